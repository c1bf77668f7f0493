{{/* The release's name, with the chart's name unless the release already holds it. */}}
{{- define "natsse.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels that select this release's pods; never change on upgrade. */}}
{{- define "natsse.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "natsse.labels" -}}
{{ include "natsse.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* "HTTPS" when natsse serves TLS itself, for probes and scrapers. */}}
{{- define "natsse.scheme" -}}
{{- if .Values.tls.secretName }}HTTPS{{ else }}HTTP{{ end -}}
{{- end -}}

{{/*
"true" when a JWT key source is set, by the values or in extraEnv (a public key
file mounted by other means). natsse refuses two sources, and so does the chart.
*/}}
{{- define "natsse.jwt" -}}
{{- $sources := list -}}
{{- if .Values.jwt.existingSecret }}{{ $sources = append $sources "NATSSE_JWT_SECRET" }}{{ end -}}
{{- if .Values.jwt.jwksUrl }}{{ $sources = append $sources "NATSSE_JWKS_URL" }}{{ end -}}
{{- range .Values.extraEnv -}}
{{- if has .name (list "NATSSE_JWT_SECRET" "NATSSE_JWT_PUBLIC_KEY" "NATSSE_JWKS_URL") }}{{ $sources = append $sources .name }}{{ end -}}
{{- end -}}
{{- if gt (len $sources) 1 -}}
{{- fail (printf "%s and %s are both set: set exactly one JWT key source" (index $sources 0) (index $sources 1)) -}}
{{- end -}}
{{- if $sources }}true{{ end -}}
{{- end -}}
