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

{{/*
GOMEMLIMIT, in MiB: goMemLimitPercent of resources.limits.memory, a Kubernetes
quantity (512Mi, 1Gi, 1.5G or bytes). Empty without a memory limit or with
goMemLimitPercent 0. Computed here because a resourceFieldRef gives the whole
limit, and Go would then let the heap grow to the very point of the OOM kill.
*/}}
{{- define "natsse.goMemLimit" -}}
{{- $limit := dig "limits" "memory" "" (.Values.resources | default dict) -}}
{{- $pct := .Values.goMemLimitPercent | default 0 | float64 -}}
{{- if or (lt $pct 0.0) (ge $pct 100.0) -}}
{{- fail (printf "goMemLimitPercent %v: want 0 (GOMEMLIMIT not set) or a percentage below 100 of resources.limits.memory" .Values.goMemLimitPercent) -}}
{{- end -}}
{{- if and $limit (gt $pct 0.0) -}}
{{- $bytes := 0.0 -}}
{{- if kindIs "string" $limit -}}
{{- $units := dict "" 1.0 "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 "k" 1000.0 "M" 1000000.0 "G" 1000000000.0 "T" 1000000000000.0 -}}
{{- $num := regexFind "^[0-9]+(\\.[0-9]+)?" $limit -}}
{{- $suffix := trimPrefix $num $limit -}}
{{- if or (not $num) (not (hasKey $units $suffix)) -}}
{{- fail (printf "resources.limits.memory %q: GOMEMLIMIT (goMemLimitPercent) is computed from it, and only quantities like 512Mi, 1Gi, 2G or a number of bytes are read" $limit) -}}
{{- end -}}
{{- $bytes = mulf (float64 $num) (get $units $suffix) -}}
{{- else -}}
{{- $bytes = float64 $limit -}}
{{- end -}}
{{- printf "%dMiB" (int64 (floor (divf (mulf $bytes $pct) 104857600.0))) -}}
{{- end -}}
{{- end -}}
