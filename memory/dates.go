package memory

import (
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

var (
	monthNames = map[string]time.Month{
		"january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6, "july": 7,
		"august": 8, "september": 9, "october": 10, "november": 11, "december": 12,
		"jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "sept": 9,
		"oct": 10, "nov": 11, "dec": 12,
	}
	isoDateRE  = regexp.MustCompile(`\b(\d{4})-(\d{2})-(\d{2})\b`)
	monthDayRE = regexp.MustCompile(`(?i)\b(january|february|march|april|may|june|july|august|september|october|november|december|jan|feb|mar|apr|jun|jul|aug|sept?|oct|nov|dec)\.?\s+(\d{1,2})(?:st|nd|rd|th)?(?:,?\s+(\d{4}))?\b`)
	dayMonthRE = regexp.MustCompile(`(?i)\b(\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?(january|february|march|april|may|june|july|august|september|october|november|december|jan|feb|mar|apr|jun|jul|aug|sept?|oct|nov|dec)\.?(?:,?\s+(\d{4}))?\b`)
	relativeRE = regexp.MustCompile(`(?i)\b(today|yesterday)\b`)
)

// questionDays returns the calendar days (UTC) a question names: ISO dates,
// "December 12, 2024", "12 December 2024", and "today"/"yesterday"
// relative to now. A date without a year ("Friday, February 9") is the
// latest such day not after now that held reports the history holds
// something on (any, when held is nil), on the weekday the question names
// if one such day is; with none held, the latest not after now.
func questionDays(q string, now time.Time, held func(day time.Time) bool) []time.Time {
	var out []time.Time
	wd, named := questionWeekday(q)
	add := func(y int, m time.Month, d int) {
		if m < 1 || m > 12 || d < 1 || d > 31 {
			return
		}
		if y == 0 {
			y = now.Year()
			if time.Date(y, m, d, 0, 0, 0, 0, time.UTC).After(now) {
				y--
			}
			if held != nil {
				y = heldYear(y, m, d, held, wd, named)
			}
		}
		out = append(out, time.Date(y, m, d, 0, 0, 0, 0, time.UTC))
	}
	for _, m := range isoDateRE.FindAllStringSubmatch(q, -1) {
		y, _ := strconv.Atoi(m[1])
		mo, _ := strconv.Atoi(m[2])
		d, _ := strconv.Atoi(m[3])
		add(y, time.Month(mo), d)
	}
	for _, m := range monthDayRE.FindAllStringSubmatch(q, -1) {
		d, _ := strconv.Atoi(m[2])
		y, _ := strconv.Atoi(m[3])
		add(y, monthNames[strings.ToLower(m[1])], d)
	}
	for _, m := range dayMonthRE.FindAllStringSubmatch(q, -1) {
		d, _ := strconv.Atoi(m[1])
		y, _ := strconv.Atoi(m[3])
		add(y, monthNames[strings.ToLower(m[2])], d)
	}
	for _, m := range relativeRE.FindAllStringSubmatch(q, -1) {
		d := now.UTC()
		if strings.EqualFold(m[1], "yesterday") {
			d = d.AddDate(0, 0, -1)
		}
		out = append(out, time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, time.UTC))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Before(out[j]) })
	return out
}

// dayBlocks returns the block range [first, last) whose arrival time falls
// on day (UTC). Blocks arrive in time order.
func (c *mctx) dayBlocks(day time.Time) (int, int) {
	from, to := day.UnixMilli(), day.AddDate(0, 0, 1).UnixMilli()
	n := c.tree.Len()
	first := sort.Search(n, func(i int) bool { return c.tree.Block(i).Time >= from })
	last := sort.Search(n, func(i int) bool { return c.tree.Block(i).Time >= to })
	return first, last
}

// yearsBack bounds how far back a date without a year is looked for.
const yearsBack = 30

// heldYear returns the latest year from latest back (yearsBack at most)
// whose day m/d the history holds something on, the weekday wd if named
// and such a year exists; latest when none is held.
func heldYear(latest int, m time.Month, d int, held func(time.Time) bool, wd time.Weekday, named bool) int {
	first := -1
	for y := latest; y > latest-yearsBack; y-- {
		t := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
		if t.Month() != m || !held(t) {
			continue // Feb 29 of a common year, or nothing said that day
		}
		if !named || t.Weekday() == wd {
			return y
		}
		if first < 0 {
			first = y
		}
	}
	if first >= 0 {
		return first
	}
	return latest
}

// weekdayRE finds a weekday a question names ("Friday", "Fri").
var weekdayRE = regexp.MustCompile(`(?i)\b(monday|tuesday|wednesday|thursday|friday|saturday|sunday|mon|tues?|wed|thu(?:rs?)?|fri|sat|sun)\b\.?,?\s+(?:\d|the\s+\d|jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)`)

// questionWeekday returns the weekday written just before a date in q.
func questionWeekday(q string) (time.Weekday, bool) {
	m := weekdayRE.FindStringSubmatch(q)
	if m == nil {
		return 0, false
	}
	w := strings.ToLower(m[1])
	for d := time.Sunday; d <= time.Saturday; d++ {
		if strings.HasPrefix(strings.ToLower(d.String()), w[:3]) {
			return d, true
		}
	}
	return 0, false
}
