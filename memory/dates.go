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
// relative to now. A date without a year takes the latest such day not
// after now.
func questionDays(q string, now time.Time) []time.Time {
	var out []time.Time
	add := func(y int, m time.Month, d int) {
		if m < 1 || m > 12 || d < 1 || d > 31 {
			return
		}
		if y == 0 {
			y = now.Year()
			if time.Date(y, m, d, 0, 0, 0, 0, time.UTC).After(now) {
				y--
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
