package thesaurus

import "strings"

// The npm package of WordNet ships without the exception lists (verb.exc,
// noun.exc, adj.exc) that undo irregular inflections; these common forms
// stand in for them. Exception files found next to the database are loaded
// as well.

// irregularVerbs lists "base form form..." per line.
const irregularVerbs = `
arise arose arisen
awake awoke awoken
be was were been
bear bore borne born
beat beaten
become became
begin began begun
bend bent
bet
bind bound
bite bit bitten
bleed bled
blow blew blown
break broke broken
breed bred
bring brought
build built
burn burnt
burst
buy bought
catch caught
choose chose chosen
cling clung
come came
cost
creep crept
cut
deal dealt
dig dug
do did done
draw drew drawn
dream dreamt
drink drank drunk
drive drove driven
eat ate eaten
fall fell fallen
feed fed
feel felt
fight fought
find found
flee fled
fling flung
fly flew flown
forbid forbade forbidden
forget forgot forgotten
forgive forgave forgiven
freeze froze frozen
get got gotten
give gave given
go went gone
grind ground
grow grew grown
hang hung
have had has
hear heard
hide hid hidden
hit
hold held
hurt
keep kept
kneel knelt
know knew known
lay laid
lead led
lean leant
leap leapt
learn learnt
leave left
lend lent
let
lie lay lain
light lit
lose lost
make made
mean meant
meet met
pay paid
prove proven
quit
read
ride rode ridden
ring rang rung
rise rose risen
run ran
say said
see saw seen
seek sought
sell sold
send sent
set
sew sewn
shake shook shaken
shine shone
shoot shot
show shown
shrink shrank shrunk
shut
sing sang sung
sink sank sunk
sit sat
sleep slept
slide slid
speak spoke spoken
speed sped
spend spent
spill spilt
spin spun
spit spat
split
spread
spring sprang sprung
stand stood
steal stole stolen
stick stuck
sting stung
stink stank stunk
strike struck stricken
string strung
strive strove striven
swear swore sworn
sweep swept
swim swam swum
swing swung
take took taken
teach taught
tear tore torn
tell told
think thought
throw threw thrown
understand understood
wake woke woken
wear wore worn
weave wove woven
weep wept
win won
wind wound
withdraw withdrew withdrawn
write wrote written
`

const irregularNouns = `
analysis analyses
calf calves
child children
crisis crises
criterion criteria
foot feet
goose geese
half halves
knife knives
leaf leaves
life lives
loaf loaves
louse lice
man men
medium media
mouse mice
ox oxen
person people
phenomenon phenomena
shelf shelves
thief thieves
tooth teeth
wife wives
wolf wolves
woman women
`

const irregularAdjs = `
bad worse worst
far farther farthest further furthest
good better best
little less least
many more most
`

func loadIrregular(exc [numPOS]map[string]string) {
	for p, list := range [numPOS]string{noun: irregularNouns, verb: irregularVerbs, adj: irregularAdjs} {
		for _, line := range strings.Split(list, "\n") {
			f := strings.Fields(line)
			for _, form := range f[min(1, len(f)):] {
				exc[p][form] = f[0]
			}
		}
	}
}
