package chatgen

// Value tables of the user's world. They are this generator's own: none is
// shared with package gen. Each case draws without replacement, so every
// person and value is distinct within a case. The tables that drawSplit
// draws from are split in two: dev seeds use the even entries, held-out
// seeds the odd ones, so that nothing learnt about one named entry of the
// dev split carries over to the held-out one.

// givenNames are first names of the people in the user's life.
var givenNames = []string{
	"Maya", "Ethan", "Priyanka", "Connor", "Leah", "Marcus", "Tessa", "Owen", "Nadine", "Rory",
	"Bella", "Declan", "Keisha", "Tomas", "Harriet", "Jonah", "Ivy", "Callum", "Sunita", "Reuben",
	"Georgia", "Malcolm", "Yasmin", "Felipe", "Rosie", "Damien", "Esther", "Kwame", "Lottie", "Bastian",
	"Carmen", "Wes", "Hollis", "Mina", "Patrick", "Sienna", "Theo", "Greer", "Ari", "Colette",
	"Dev", "Freya", "Gus", "Hattie", "Ibrahim", "Juniper", "Kit", "Lorna", "Mateus", "Nell",
	"Otis", "Phoebe", "Quinn", "Ronan", "Saoirse", "Tariq", "Una", "Vaughn", "Willa", "Zane",
	"Abigail", "Barney", "Cleo", "Dexter", "Elodie", "Fergus", "Gemma", "Hugh", "Imani", "Jude",
}

// familyNames are surnames.
var familyNames = []string{
	"Pruitt", "Okonkwo", "Haverford", "Lindgren", "Castellanos", "Whitlock", "Brennan", "Mistry", "Fairclough", "Dubois",
	"Kowalski", "Ashby", "Nakagawa", "Oduya", "Trelawney", "Vance", "Marchetti", "Sutcliffe", "Abara", "Greenhalgh",
	"Rossiter", "Tanaka", "Bishara", "Calloway", "Demir", "Ellery", "Fitzwilliam", "Gallagher", "Hollins", "Iverson",
	"Jardim", "Kearney", "Lockhart", "Montague", "Nyberg", "Oyelowo", "Petrakis", "Quarles", "Renwick", "Salazar",
}

// places are towns and neighbourhoods the user lives in over time.
var places = []string{
	"Millbrook", "Ashford Heights", "Kelso Park", "Wrenfield", "Harbourside", "Old Quarry", "Linden Vale", "Stonebridge",
	"Marlow End", "Briar Hill", "Copperfield", "Eastwick Green", "Foxhollow", "Glenmere", "Hawthorn Rise", "Larkspur",
}

// employers are companies and organisations the user works for.
var employers = []string{
	"Brightline Logistics", "Hearthstone Bakery", "Tidewater Insurance", "Northgate Hospital", "Pemberton & Lowe",
	"Quillfeather Books", "Saltmarsh Brewing", "Juniper Health", "Kestrel Aerospace", "Oakhaven Council",
	"Redfern Architects", "Silverline Telecom", "Blue Heron Software", "Meridian Freight", "Thistledown Nursery",
}

// cars are the user's cars over time.
var cars = []string{
	"a grey Honda Jazz", "a secondhand Skoda Octavia", "a little red Fiat Panda", "a Toyota Prius", "a battered Volvo V70",
	"a white Kia Niro", "a Ford Focus estate", "a Nissan Leaf", "a Subaru Outback", "a VW Polo", "a Mazda CX-5",
	"a Hyundai Ioniq", "a Peugeot 208", "a Renault Zoe",
}

// gyms are places the user trains at.
var gyms = []string{
	"Ironclad Fitness", "the Pulse studio on Canal Street", "Granite Gym", "the leisure centre pool", "Forge Athletic",
	"Summit Climbing Wall", "the CrossFit box behind the station", "Lotus Yoga Loft", "Apex Boxing Club", "Riverside Rowing Club",
}

// roles are one-word names of people in the user's life paired with
// descriptions that share no content word with the name (after stemming)
// and no WordNet synonym of it: the paraphrase type asks with the
// description. The tests check both properties mechanically.
var roles = []struct{ word, desc string }{
	{"podiatrist", "who looks after my feet"},
	{"landlord", "who we pay the monthly rent to"},
	{"accountant", "who sorts out my taxes every spring"},
	{"barber", "who trims my hair"},
	{"electrician", "who rewired our kitchen sockets"},
	{"therapist", "who I talk to about my anxiety"},
	{"physiotherapist", "who gives me exercises for my bad knee"},
	{"optometrist", "who checks my eyesight"},
	{"orthodontist", "who fitted my daughter's braces"},
	{"babysitter", "who watches the kids on Friday nights"},
	{"chiropractor", "who cracks my back"},
	{"locksmith", "who changed the locks on our front door"},
	{"caterer", "who did the food for our anniversary party"},
	{"groomer", "who trims the dog's fur"},
	{"roommate", "who shares my apartment"},
	{"allergist", "who is treating my hay fever"},
}

// relations are relatives named by one word in the history and described
// by their relation in the question; the same two properties hold.
var relations = []struct{ word, desc string }{
	{"nephew", "my sister's little boy"},
	{"niece", "my brother's daughter"},
	{"stepson", "my husband's boy from his first marriage"},
	{"grandma", "my mum's mother"},
	{"godson", "the baby I stood up for at his christening"},
	{"stepdaughter", "my wife's girl from her first marriage"},
	{"granddad", "my father's father"},
	{"cousin", "my aunt's son"},
}

// things are objects named by one word in the history and described by
// what they do in the question.
var things = []struct{ word, desc, brands string }{
	{"dehumidifier", "machine that pulls moisture out of the air", "Meaco|Ebac|Igenix"},
	{"treadmill", "machine I walk on indoors when it rains", "NordicTrack|Sole F63|Reebok GT40"},
	{"kettle", "thing I boil water in", "Smeg|Bosch Sky|Russell Hobbs Luna"},
	{"bassinet", "cot the baby sleeps in next to our bed", "Chicco Next2Me|SnuzPod|Halo"},
	{"mandoline", "gadget for cutting vegetables really thin", "OXO|Benriner|Zyliss"},
	{"thermostat", "gadget that controls the heating", "Nest|Hive|Tado"},
	{"projector", "gadget that throws films onto the living room wall", "Epson|BenQ|Optoma"},
	{"blender", "machine that whizzes my morning smoothies", "Ninja|Vitamix|Nutribullet"},
}

// pets are pet names.
var pets = []string{"Biscuit", "Pepper", "Mochi", "Rufus", "Waffles", "Clementine", "Bramble", "Ziggy", "Nacho", "Tilly", "Pickle", "Juno"}

// instruments, sports and hobbies kids and friends take up.
var pastimes = []string{
	"the cello", "the trumpet", "fencing", "the drums", "ballet", "judo", "the violin", "chess club",
	"swimming squad", "the clarinet", "gymnastics", "the ukulele", "karate", "water polo",
}

// venues are workplaces for hop answers.
var venues = []string{
	"the Riverside library", "the bike shop on Mercer Road", "the vet clinic by the roundabout", "the council planning office",
	"the garden centre out past the ring road", "the Marigold Thai restaurant", "the children's hospital", "the climbing centre",
	"the big Tesco at Westgate", "the recording studio on Fenn Street", "the airport control tower", "the primary school on Elm Lane",
}

// cityTrips are destinations for trips and lists.
var cityTrips = []string{
	"Lisbon", "Copenhagen", "Edinburgh", "Seville", "Krakow", "Ghent", "Bologna", "Galway", "Porto", "Ljubljana",
	"Bruges", "Tallinn", "Vienna", "Valencia", "Bergen", "Lyon",
}

// allergens are things people react to.
var allergens = []string{"shellfish", "penicillin", "peanuts", "latex", "kiwi fruit", "cats", "sesame", "bee stings", "ibuprofen", "strawberries"}

// flatItems are things bought for a new home.
var flatItems = []string{
	"a standing lamp", "a second-hand sofa", "a tall bookcase", "a microwave", "blackout curtains", "a bathroom cabinet",
	"a wool rug", "a rice cooker", "a shoe rack", "a cordless drill", "bedside tables", "a coat stand",
}

// giftItems are presents.
var giftItems = []string{
	"a pottery class voucher", "noise-cancelling headphones", "a silk scarf", "a telescope", "a cast iron pan",
	"a signed football shirt", "a leather journal", "a bonsai tree", "a board game called Cascadia", "a hammock",
	"concert tickets", "a polaroid camera",
}

// activities are what the user did on a given day (temporal questions):
// each is an answer phrase whose words never appear in the question.
var activities = []string{
	"repainting the garden fence", "clearing out the loft", "assembling the new wardrobe", "scrubbing the oven",
	"re-grouting the bathroom tiles", "hanging shelves in the hallway", "washing both cars", "sorting the tax receipts",
	"pruning the apple tree", "baking sourdough for the neighbours", "fixing the leaky shower head", "planting tulip bulbs",
	"sanding the old dresser", "defrosting the freezer", "building a treehouse with the kids", "waxing the kayak",
	"reorganising the garage", "jet-washing the patio", "knitting a scarf for winter", "labelling every spice jar",
	"replacing the bike chain", "making plum jam", "digging a vegetable patch", "scanning old family photos",
	"painting the spare room yellow", "teaching the dog to fetch", "decluttering the wardrobe", "fitting a new doorbell",
}

// anchors are dated one-off events a relative temporal question refers to:
// what the user said that day, and how the question names it.
var anchors = []struct{ said, named string }{
	{"Just got back from the dentist, two fillings, my face is numb.", "my dentist appointment"},
	{"Had my driving test this morning and I passed!", "my driving test"},
	{"The job interview went okay I think, they asked a lot about spreadsheets.", "that job interview"},
	{"Got my flu jab at the pharmacy earlier, arm is sore already.", "my flu jab"},
	{"Our flight home landed at 2am, I'm a zombie.", "we flew home"},
	{"Ran my first 10k race this morning, finished in 58 minutes.", "my first 10k"},
	{"The boiler engineer finally came and replaced the pump.", "the boiler got fixed"},
	{"Went to my cousin's wedding today, danced until midnight.", "my cousin's wedding"},
}

// codes are opaque strings the user asks back verbatim: what they are and
// the pattern of the code (L letter, D digit, X either, else literal).
var codes = []struct{ what, pattern string }{
	{"the storage unit gate code", "DDDD#"},
	{"the wifi password at my parents' place", "llllllDDDD"},
	{"our booking reference for the ferry", "XXXXXX"},
	{"the serial number on the broken dishwasher", "LLDDDDDDDL"},
	{"my NHS number", "DDD DDD DDDD"},
	{"the reference for my parking appeal", "PCN-DDDDDDD"},
	{"the tracking number for the replacement laptop charger", "LLDDDDDDDDDLL"},
	{"the membership number for the car breakdown cover", "DDDDDDDDLL"},
	{"the locker combination at the pool", "DD-DD-DD"},
	{"the door code for my sister's building", "D*DDD"},
	{"the gate code for the allotment", "DDDD"},
	{"the order number for the new sofa", "DDD-DDDDDDD-DDDDDDD"},
	{"the reference for the passport renewal", "LLLDDDDDDD"},
}

// saidTopics are requests the user makes: the assistant's answer sentence
// holding a value, the question asking it back, what the user later says
// they did instead (a distractor), and the values.
var saidTopics = []struct {
	request, answer, question, instead string
	values                             []string
}{
	{"Can you suggest a name for the kitten we're adopting? She's grey and very bossy.", "For a bossy grey kitten I'd go with %s.",
		"which name did you come up with for our kitten?", "We ended up calling the kitten %s, sorry!",
		[]string{"Duchess", "Pebble", "Marple", "Smokey", "Countess", "Ash"}},
	{"What should I cook for eight people on Saturday, one of them is vegetarian?", "I'd make %s, it scales well and the vegetarian is covered.",
		"what dish did you suggest when I had eight people coming over?", "In the end I panicked and made %s.",
		[]string{"a big tray of mushroom and lentil lasagne", "a chickpea and spinach curry", "a roasted vegetable paella", "a sweet potato chilli"}},
	{"I need a houseplant that survives a dark bathroom, any ideas?", "Your best bet is %s, it copes with low light and humidity.",
		"which plant did you recommend for the bathroom?", "The garden centre only had %s so I got that.",
		[]string{"a ZZ plant", "a cast iron plant", "a Boston fern", "a peace lily"}},
	{"What's a good book to read on the plane, something gripping but not too heavy?", "Try %s, it's a page-turner without being exhausting.",
		"which book did you tell me to take on the plane?", "I ended up reading %s on the plane instead.",
		[]string{"The Thursday Murder Club", "Project Hail Mary", "The Night Circus", "Shantaram"}},
	{"Suggest a board game for four adults who don't like long rules explanations.", "I'd pick %s, you can teach it in five minutes.",
		"what game did you suggest for our games night?", "We played %s in the end, chaos.",
		[]string{"Codenames", "Ticket to Ride", "Azul", "Sushi Go Party"}},
	{"My dad turns seventy next month, what could I get him? He has everything.", "How about %s? It's an experience rather than more stuff.",
		"what did you think I should get my father for his big birthday?", "My brother already bought Dad %s, typical.",
		[]string{"a hot air balloon ride", "a steam train day out", "a private cooking lesson", "a distillery tour"}},
	{"We need a name for our pub quiz team, something a bit silly.", "You could go with %s.",
		"what did you propose we call our trivia team?", "The team overruled me and picked %s.",
		[]string{"Quizteama Aguilera", "Les Quizerables", "The Universally Challenged", "Agatha Quiztie"}},
	{"Can you think of a fun name for my new sourdough starter?", "Call it %s, every starter deserves a pun.",
		"what did you say I should christen the jar of fermenting flour?", "My partner insisted on %s for the starter.",
		[]string{"Clint Yeastwood", "Bread Pitt", "Doughbi-Wan", "Yeast Side Story"}},
}
