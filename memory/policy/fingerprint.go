package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
)

// DetectorVersion numbers the behaviour of the built-in detectors and of
// the normalized views they read (normalize.go). It is part of every
// Fingerprint, so that memory stored before a detector changed is scanned
// again when it is next loaded (memory's rescan on load).
//
// Bump it in the same commit as any change to what a detector or a view
// matches: a new obfuscation found, a false positive dropped, a new
// issuer prefix or country length, a separator read differently. A change
// that cannot alter any span (speed, refactoring) leaves it.
//
// History: 1, the normalized views (NFKC, format characters, typographic
// and defanged separators) and the detectors that accept dotted cards,
// dashed IBANs and spaced e-mail addresses. 2, adjacent values: every
// card, phone number and IBAN of a run of them is found, back to back or
// across any separator, IP ranges and fixed-length keys written in a row.
const DetectorVersion = 2

// Fingerprint identifies what the policy finds in text: its rules in
// order, each with its name, action, and detector or pattern, and the
// version of the detectors (DetectorVersion). Two policies with one
// fingerprint tag text alike, so spans stored under one stay valid under
// the other: memory rescans a stored context whose fingerprint differs
// from the engine's, and snapshots compare it to decide whether a bundle's
// tags can be kept. Allowed scopes are left out: they decide who may see a
// span when it is read, never which spans there are. It is "" for a policy
// with no rules, which finds nothing whatever its detectors do.
func (p *Policy) Fingerprint() string { return p.fingerprint(DetectorVersion) }

// fingerprint is Fingerprint under a given detector version.
func (p *Policy) fingerprint(version int) string {
	if p == nil || len(p.rules) == 0 {
		return ""
	}
	h := sha256.New()
	field := func(s string) {
		h.Write([]byte(strconv.Itoa(len(s))))
		h.Write([]byte{':'})
		h.Write([]byte(s))
	}
	field("detectors")
	field(strconv.Itoa(version))
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
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
