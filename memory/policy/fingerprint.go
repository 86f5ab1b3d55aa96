package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
)

// Fingerprint identifies the policy's configuration: its rules in order,
// each with its name, action, detector or pattern and allowed scopes. Two
// policies with one fingerprint tag and filter text alike, so spans stored
// under one stay valid under the other (snapshots compare it to decide
// whether a bundle's tags can be kept). It is "" for a policy with no rules.
func (p *Policy) Fingerprint() string {
	if p == nil || len(p.rules) == 0 {
		return ""
	}
	h := sha256.New()
	field := func(s string) {
		h.Write([]byte(strconv.Itoa(len(s))))
		h.Write([]byte{':'})
		h.Write([]byte(s))
	}
	for _, r := range p.rules {
		field(r.name)
		field(r.action)
		if r.pattern != nil {
			field("pattern")
			field(r.pattern.String())
		} else {
			field("detector")
			field(r.label)
		}
		field(strings.Join(r.allow, "\x00"))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
