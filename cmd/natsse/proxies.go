package main

import (
	"fmt"
	"net/netip"
	"strings"
)

// prefixList reads NATSSE_TRUSTED_PROXIES: CIDRs or single addresses,
// comma separated.
type prefixList []netip.Prefix

func (l *prefixList) UnmarshalText(text []byte) error {
	*l = nil
	for entry := range strings.SplitSeq(string(text), ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		p, err := netip.ParsePrefix(entry)
		if err != nil {
			a, aerr := netip.ParseAddr(entry)
			if aerr != nil {
				return fmt.Errorf("%q is neither a CIDR (10.0.0.0/8, fd00::/8) nor an address", entry)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
		}
		*l = append(*l, p.Masked())
	}
	return nil
}
