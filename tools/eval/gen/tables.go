package gen

// Value tables the planted facts draw from. Each case draws without
// replacement, so every person, place and value is distinct within a case.

// firstNames and lastNames are paired index by index after shuffling, so
// no two people of a case share a first or a last name.
var firstNames = []string{
	"Ada", "Adebayo", "Agnes", "Aiko", "Alma", "Amara", "Anders", "Anika", "Arjun", "Astrid",
	"Beatriz", "Bertrand", "Bianca", "Bjorn", "Bruno", "Camille", "Cassius", "Celeste", "Chidi", "Clara",
	"Dalia", "Dario", "Delphine", "Dmitri", "Dorothea", "Eamon", "Edith", "Elif", "Emeka", "Esme",
	"Fabian", "Farah", "Felix", "Fiona", "Florian", "Gaia", "Gideon", "Greta", "Gustavo", "Hana",
	"Hamish", "Hedda", "Hugo", "Idris", "Ilse", "Imogen", "Ines", "Ingrid", "Isaac", "Ivo",
	"Jasper", "Joaquin", "Juno", "Kamala", "Kasimir", "Keiko", "Kofi", "Lars", "Leona", "Linnea",
	"Lorenzo", "Lucia", "Magnus", "Malik", "Marisol", "Mateo", "Matilda", "Meiling", "Milos", "Mirela",
	"Nadia", "Naveen", "Nell", "Niamh", "Nikolai", "Noor", "Oksana", "Olafur", "Orla", "Oscar",
	"Ottilie", "Paloma", "Pavel", "Petra", "Priya", "Quentin", "Rafael", "Rania", "Renata", "Rhys",
	"Rosalind", "Rufus", "Saanvi", "Sabine", "Santiago", "Selma", "Silas", "Soren", "Stellan", "Suki",
	"Tamsin", "Tariq", "Thea", "Tobias", "Ulla", "Valentina", "Vesna", "Viggo", "Wanda", "Wendell",
	"Xiomara", "Yara", "Yusuf", "Zelda", "Zoltan", "Zuri", "Leif", "Odette", "Ravi", "Hester",
}

var lastNames = []string{
	"Abernathy", "Achterberg", "Adeyemi", "Alcott", "Almeida", "Anand", "Arbuckle", "Baptiste", "Barzani", "Beaumont",
	"Bergstrom", "Blackwood", "Bonnaire", "Brannigan", "Castellano", "Chowdhury", "Cirillo", "Dahlberg", "Delacroix", "Drummond",
	"Ekwueme", "Esposito", "Falkenrath", "Fairweather", "Ferreira", "Galloway", "Gwynne", "Haddad", "Halvorsen", "Hargreaves",
	"Ibarra", "Ishikawa", "Jablonski", "Jovanovic", "Kaminski", "Karlsson", "Kowalczyk", "Kuznetsov", "Lachance", "Lindqvist",
	"Lombardi", "Lundgren", "Macallister", "Mbeki", "Moreau", "Nakamura", "Nakashima", "Novak", "Nwosu", "Obradovic",
	"Okafor", "Olsen", "Ostrowski", "Pacheco", "Papadakis", "Pellegrini", "Petrov", "Quigley", "Rasmussen", "Ravensworth",
	"Reinholt", "Rinaldi", "Rosenthal", "Saarinen", "Sandoval", "Schreiber", "Sekibo", "Sorensen", "Szabo", "Takahashi",
	"Tavares", "Thackeray", "Trevanion", "Underhill", "Valdivia", "Vasquez", "Verhoeven", "Vukovic", "Wainwright", "Whitcombe",
	"Wojcik", "Yamamoto", "Yilmaz", "Zamora", "Zielinski", "Ashdown", "Bellamy", "Carrington", "Dunmore", "Eriksen",
	"Fennimore", "Gallardo", "Holloway", "Iwasaki", "Kettering", "Langford", "Merriweather", "Northcott", "Oyelaran", "Penhaligon",
	"Quintero", "Rutherford", "Stanhope", "Thorvaldsen", "Umberfield", "Vandermeer", "Westergaard", "Xenakis", "Yardley", "Zabaleta",
	"Albrecht", "Brightwater", "Coventry", "Delgado", "Everly", "Fonseca", "Grimaldi", "Hawthorne", "Ingleby", "Jardine",
}

var cities = []string{
	"Oslo", "Kyoto", "Lima", "Porto", "Leeds", "Tallinn", "Valparaiso", "Ljubljana", "Hobart", "Quito",
	"Bergen", "Dubrovnik", "Tbilisi", "Kraków", "Marrakesh", "Cartagena", "Reykjavik", "Antwerp", "Nagoya", "Halifax",
	"Wellington", "Gdansk", "Seville", "Montevideo", "Trondheim", "Salzburg", "Adelaide", "Bilbao", "Cusco", "Tromsø",
	"Zanzibar", "Plovdiv", "Matera", "Galway", "Brno", "Aarhus",
}

var teas = []string{
	"genmaicha", "rooibos", "lapsang souchong", "hojicha", "silver needle", "tulsi", "yerba mate", "darjeeling",
	"oolong", "chamomile", "sencha", "pu-erh", "hibiscus", "assam", "jasmine pearl", "kukicha",
}

var subjects = []string{
	"marine biology", "medieval history", "civil engineering", "astrophysics", "linguistics", "veterinary medicine",
	"architecture", "agronomy", "cognitive science", "oceanography", "art restoration", "seismology",
	"forestry", "epidemiology", "glaciology", "urban planning",
}

var instruments = []string{
	"cello", "bassoon", "viola", "oboe", "French horn", "double bass", "clarinet", "harp",
	"trombone", "timpani", "piccolo", "euphonium", "marimba", "harpsichord",
}

var streets = []string{
	"Harbor Lane", "Juniper Row", "Alder Close", "Quarry Road", "Tamarind Way", "Wexley Crescent", "Bellweather Avenue",
	"Foxglove Terrace", "Millrace Court", "Saltmarsh Drive", "Kestrel Mews", "Orchard Rise", "Pennyroyal Place",
	"Lantern Hill", "Copperbeech Walk", "Thistledown Gardens",
}

var companies = []string{
	"Brightline Robotics", "Halcyon Biotech", "Northwind Logistics", "Quillfeather Press", "Corvid Analytics",
	"Tidewater Energy", "Larkspur Games", "Ironbark Construction", "Bluefin Aerospace", "Meridian Textiles",
	"Stonefruit Foods", "Glasswing Optics", "Pinecrest Insurance", "Vireo Pharmaceuticals",
}

var medications = []string{
	"penicillin", "ibuprofen", "codeine", "amoxicillin", "sulfa drugs", "aspirin", "naproxen", "tetracycline",
	"cephalexin", "morphine", "erythromycin", "lidocaine",
}

var projects = []string{
	"Bluebird", "Copperhead", "Driftwood", "Evergreen", "Firefly", "Granite", "Hummingbird", "Ironwood",
	"Juniper", "Kingfisher", "Lodestar", "Moonstone", "Nightjar", "Obsidian", "Pelican", "Quicksilver",
	"Redwood", "Sandpiper", "Thunderbolt", "Wildflower",
}

var pets = []string{
	"Biscuit", "Pepper", "Marmalade", "Noodle", "Waffles", "Pickles", "Muffin", "Bramble", "Tofu", "Mochi",
	"Clementine", "Dumpling", "Pretzel", "Nutmeg", "Sprocket", "Truffle", "Gizmo", "Pumpernickel",
}

var fears = []string{
	"thunderstorms", "vacuum cleaners", "fireworks", "bicycles", "umbrellas", "garden hoses", "balloons",
	"skateboards", "doorbells", "escalators", "hair dryers", "shopping carts",
}

var professions = []string{
	"marine biologist", "court stenographer", "glassblower", "air traffic controller", "cartographer", "beekeeper",
	"locksmith", "sommelier", "paramedic", "luthier", "actuary", "blacksmith", "midwife", "taxidermist",
	"stonemason", "puppeteer",
}

var relations = []string{"older sister", "younger brother", "business partner", "best friend", "landlord", "godmother", "cousin", "fiancee"}

var gifts = []string{
	"a cast-iron skillet", "a wool scarf", "a jigsaw puzzle", "a fountain pen", "a bonsai tree", "a pair of binoculars",
	"a ceramic teapot", "a leather journal", "a telescope", "a hammock", "a sourdough starter kit", "a chess set",
	"a weather station", "a hand-knitted blanket", "a star map", "a camping lantern",
}

var languages = []string{
	"Portuguese", "Korean", "Tagalog", "Icelandic", "Swahili", "Hungarian", "Welsh", "Vietnamese", "Finnish",
	"Catalan", "Amharic", "Georgian", "Basque", "Tamil", "Maltese", "Estonian",
}

var namedThings = []string{
	"kayak", "sailboat", "sourdough starter", "vegetable garden", "podcast", "food truck", "bakery", "tabletop campaign",
	"rescue cat", "pottery studio", "newsletter", "hiking club", "bookshop", "camper van", "robot vacuum", "chess club",
}

var thingNames = []string{
	"Saltwhistle", "Moonbeam Rambler", "Crumbsworth", "Tangleroot", "The Quiet Hour", "Wandering Fork", "Emberloaf",
	"Shadows of Vell", "Sir Pounce", "Muddy Hands", "The Weekly Lantern", "Ridge Runners", "Dog-Eared Corner",
	"Nomad Nest", "Dustbuster Prime", "Knight Owls", "Velvet Thunder", "Pinecone Parade",
}

var loanThings = []string{"boat", "tractor", "solar panel", "camper van", "piano", "motorcycle", "kitchen remodel", "e-bike", "greenhouse", "horse trailer"}

var dishes = []string{
	"mushroom risotto", "grilled swordfish", "lamb tagine", "duck confit", "eggplant parmigiana", "beef bourguignon",
	"shrimp paella", "butternut squash ravioli", "pork carnitas", "chicken mole", "seared scallops", "venison stew",
}

var wines = []string{
	"Etna Rosso", "Grüner Veltliner", "Albariño", "Côtes du Rhône", "Vermentino", "Blaufränkisch", "Txakoli",
	"Assyrtiko", "Zweigelt", "Nero d'Avola", "Mencía", "Chenin Blanc",
}

// tripKinds are what confirmation codes are for.
var tripKinds = []string{"flight to", "hotel in", "rental car in", "ferry to", "train to", "museum tour in"}

var products = []string{
	"Inkwell Studio", "Vantage CAD", "Sonora Mixer", "Lumen Photo Suite", "Tessellate 3D", "Quartermaster Accounting",
	"Beacon Backup", "Harbor Notes", "Atlas Mapper", "Cadence DAW", "Wren Mail", "Kiln Renderer",
}

var parcels = []string{
	"standing desk", "espresso grinder", "rowing machine", "drone", "air purifier", "mechanical keyboard",
	"dehumidifier", "record player", "sewing machine", "tent", "projector", "paddleboard",
}

var restaurants = []string{
	"Ristorante Vespa", "The Gilded Turnip", "Casa Ondina", "Noodle Lantern", "Bistro Marguerite", "The Salt Cellar",
	"Hanami Kitchen", "El Farolito Verde", "The Copper Kettle", "Taverna Kyma", "Little Saffron", "The Crooked Spoon",
	"Pho Dragonfly", "Brasserie Loupe", "Mesa Quemada", "The Olive Cart",
}

var repairs = []string{
	"leaky kitchen faucet", "squeaky garage door", "wobbly dining table", "broken fence gate", "cracked bathroom tile",
	"jammed window latch", "flickering porch light", "clogged gutter", "loose stair railing", "dripping shower head",
	"stuck dishwasher door", "torn window screen", "rattling ceiling fan",
}

var books = []string{
	"The Lighthouse Ledger", "Ashes of Marrow", "A Map of Small Rivers", "The Clockmaker's Daughter", "Salt and Cinder",
	"Winter at Halden Farm", "The Glass Orchard", "Echoes Under Ice", "The Last Cartographer", "Paper Moons",
	"A Season of Wrens", "The Iron Meadow", "Tidelines", "The Velvet Archive",
}

// specialists pairs a medical specialist with a synonym phrase that shares
// no word with it.
var specialists = [][2]string{
	{"cardiologist", "heart specialist"}, {"dermatologist", "skin doctor"}, {"ophthalmologist", "eye doctor"},
	{"podiatrist", "foot doctor"}, {"pulmonologist", "lung specialist"}, {"nephrologist", "kidney specialist"},
	{"gastroenterologist", "stomach specialist"}, {"neurologist", "brain specialist"}, {"endocrinologist", "hormone doctor"},
	{"rheumatologist", "joint specialist"},
}

var cutBacks = []string{
	"espresso", "salty snacks", "energy drinks", "red meat", "sugary cereal", "fried food", "aged cheese",
	"licorice", "soda", "pastries", "late dinners", "canned soup",
}

// furniture pairs an item with a synonym that shares no word with it.
var furniture = [][2]string{
	{"sofa", "couch"}, {"automobile", "car"}, {"refrigerator", "fridge"}, {"bicycle", "bike"}, {"rug", "carpet"},
	{"jacket", "coat"}, {"television", "TV"}, {"backpack", "rucksack"}, {"stroller", "pram"}, {"cellphone", "mobile"},
}

var colors = []string{
	"olive green", "burnt orange", "navy blue", "mustard yellow", "charcoal gray", "cherry red", "teal", "lavender",
	"ivory", "forest green", "copper", "plum", "salmon pink", "slate blue",
}

// userOpeners start a filler user message about a topic; %s is the topic.
var userOpeners = []string{
	"I'm reading about %s.",
	"Quick question about %s.",
	"Let's go back to %s.",
	"I have been digging into %s today.",
	"Can you help me understand %s?",
	"Here is something from %s that confused me.",
	"A colleague pointed me at %s.",
	"I keep running into %s at work.",
}

// userClosers end a filler user message.
var userClosers = []string{
	"Can you explain more?", "What does that mean in practice?", "Is that right?", "What else should I know?",
	"Why would it be designed that way?", "How would you summarize it?", "Any caveats?", "Does that match your understanding?",
}

// assistantOpeners start a filler assistant message ("" for none).
var assistantOpeners = []string{
	"", "Sure.", "Good question.", "Yes.", "Here is how I understand it.", "Let me explain.", "Right.", "In short, it depends on the details.",
}

// factLeads may precede a planted user statement ("" for none).
var factLeads = []string{
	"", "", "Quick note for later.", "Something unrelated first.", "Personal update.", "Before I forget.",
	"Unrelated, but worth remembering.", "Oh, and one more thing.",
}
