"""Legal: the type of a contract clause and the party it obligates.

Two outputs a contract reviewer fills in for every clause. Easy clauses carry their heading;
medium ones are plain operative language; hard ones are passive ("shall be paid by the
Buyer"), start with the other party's name, or sit under a misleading heading.
"""

from __future__ import annotations

import random
import zlib
from typing import Literal

import dspy

from ax.programs.domain import Domain
from ax.programs.generation import DEFAULT_ITEMS, generate_examples, render
from ax.programs.metrics import label_metric, mean_metric, text_metric
from ax.programs.modules import PredictProgram, context_field

ClauseType = Literal["confidentiality", "termination", "indemnification", "payment",
                     "non_compete", "governing_law", "warranty"]
BOTH = "both"


class ReviewClause(dspy.Signature):
    """Classify a contract clause and name the party it obligates (the one that must act,
    pay, refrain or give the promise), using the party's defined name, e.g. "Licensee".
    Answer "both" when the clause binds each party equally."""

    context: str = context_field()
    clause: str = dspy.InputField()
    clause_type: ClauseType = dspy.OutputField()
    obligated_party: str = dspy.OutputField(desc='a defined party name from the clause, or "both"')


class ClauseReview(PredictProgram):
    signature = ReviewClause


# (provider, paying party, what the provider delivers)
PARTIES = [("Supplier", "Customer", "Goods"), ("Licensor", "Licensee", "Software"), ("Landlord", "Tenant", "Premises"),
           ("Consultant", "Company", "Deliverables"), ("Contractor", "Client", "Work"), ("Seller", "Buyer", "Products"),
           ("Service Provider", "Customer", "Services"), ("Manufacturer", "Distributor", "Products"),
           ("Lessor", "Lessee", "Equipment"), ("Vendor", "Purchaser", "Goods"), ("Agency", "Advertiser", "Campaign Services"),
           ("Developer", "Owner", "Project"), ("Franchisor", "Franchisee", "System"), ("Carrier", "Shipper", "Transport Services"),
           ("Host", "Subscriber", "Platform"), ("Translator", "Publisher", "Translation")]
STATES = ["the State of New York", "the State of Delaware", "the State of California", "the State of Texas",
          "the State of Illinois", "England and Wales", "the Province of Ontario", "Scotland", "Ireland",
          "the State of Washington", "the Commonwealth of Massachusetts", "Singapore"]
# Which side each clause type obligates: provider, payer, either, or both.
ROLE = {"confidentiality": "either", "termination": "either", "indemnification": "provider", "payment": "payer",
        "non_compete": "provider", "governing_law": "both", "warranty": "provider"}
# May this type be written as a mutual clause instead ("Each party shall ...")?
MUTUAL_OK = {"confidentiality", "termination", "indemnification"}
HEADINGS = {"confidentiality": "Confidentiality", "termination": "Termination", "indemnification": "Indemnification",
            "payment": "Payment Terms", "non_compete": "Non-Competition", "governing_law": "Governing Law",
            "warranty": "Warranty"}

# {P} is the obligated party, {O} the other; "mutual" templates bind both.
CLAUSES: dict[str, dict[str, list[str]]] = {
    "confidentiality": {
        "one": ["The {P} shall keep all Confidential Information of the {O} strictly confidential and shall not disclose it to any third party.",
                "The {P} will not reveal to anyone outside its organisation any non-public business or technical information received from the {O}.",
                "Any non-public information that the {O} shares under this Agreement shall be held in confidence by the {P} and used solely to perform this Agreement."],
        "mutual": ["Each party shall keep the other party's Confidential Information secret [for five years|during the term and for three years thereafter].",
                   "Neither party shall disclose the terms of this Agreement without the other party's prior written consent."],
    },
    "termination": {
        "one": ["The {P} shall give the {O} at least [sixty (60)|ninety (90)|thirty (30)] days' written notice before terminating this Agreement for convenience.",
                "Should the {P} wish to end this Agreement early, the {P} must notify the {O} in writing [three months|sixty days] in advance.",
                "This Agreement may be brought to an end by the {P} only after [thirty|sixty] days' prior written notice has been served on the {O}."],
        "mutual": ["Either party may terminate this Agreement immediately upon written notice if the other party materially breaches it and fails to cure within [thirty|fifteen] days.",
                   "Each party may end this Agreement on [ninety|sixty] days' written notice to the other."],
    },
    "indemnification": {
        "one": ["The {P} shall indemnify, defend and hold harmless the {O} from all claims arising out of the {P}'s negligence.",
                "The {P} agrees to cover all losses, damages and legal fees the {O} incurs because of third-party claims caused by the {G}.",
                "All losses suffered by the {O} as a result of third-party infringement claims relating to the {G} shall be reimbursed by the {P}."],
        "mutual": ["Each party shall indemnify the other against third-party claims arising from its own breach of this Agreement."],
    },
    "payment": {
        "one": ["The {P} shall pay each invoice within [thirty (30)|forty-five (45)] days of receipt.",
                "The {P} will settle all amounts due under this Agreement by bank transfer no later than the [15th|last day] of each month.",
                "Upon receipt of a correct invoice from the {O}, the {P} shall remit the fees set out in Schedule B within [30|45] days.",
                "All fees shall be paid by the {P} in US dollars within thirty days; late amounts accrue interest at 1.5% per month."],
    },
    "non_compete": {
        "one": ["During the term and for [twelve (12)|twenty-four (24)] months thereafter, the {P} shall not engage in any business that competes with the {O}.",
                "For one year after this Agreement ends, the {P} will not offer competing {G} to any customer of the {O} in the Territory.",
                "Nothing in this Agreement restricts the {O} from working with others; the {P}, however, shall not during the term provide competing {G} to any rival of the {O}."],
    },
    "governing_law": {
        "mutual": ["[This Agreement|This Contract|This Agreement and any dispute arising from it] shall be governed by [and construed in accordance with|] the laws of {state}.",
                   "Any dispute between the {P} and the {O} will be decided under the law of {state}.",
                   "The {O} acknowledges that this Agreement, including any claim brought by the {P}, is governed by the laws of {state}, without regard to conflict-of-laws principles."],
    },
    "warranty": {
        "one": ["The {P} warrants that the {G} will be free from defects in materials and workmanship for [twelve (12)|six (6)] months.",
                "The {P} promises that the {G} will perform substantially as described in the documentation for [90|180] days after delivery.",
                "Except as expressly stated, the {O} receives the {G} 'as is'; the only assurance given is that the {P} guarantees the {G} will conform to the specifications for six months."],
    },
}


def make_item(rng: random.Random, difficulty: str) -> dict:
    clause_type = rng.choice(list(CLAUSES))
    provider, payer, goods = rng.choice(PARTIES)
    role = ROLE[clause_type]
    mutual = role == "both" or (clause_type in MUTUAL_OK and rng.random() < 0.3)
    obligated, other = (payer, provider) if role == "payer" or (role == "either" and rng.random() < 0.5) else (provider, payer)
    templates = CLAUSES[clause_type]["mutual" if mutual else "one"]
    # Templates are ordered plain -> tricky; difficulty picks from the matching end.
    template = {"easy": templates[0], "medium": rng.choice(templates[:2]), "hard": templates[-1]}[difficulty]
    body = render(rng, template, P=obligated, O=other, G=goods, state=rng.choice(STATES))
    # Numbered from the wording, so a clause never reappears under a different number.
    digest = zlib.crc32(body.encode())
    number = f"{2 + digest % 17}.{1 + digest // 17 % 9}"
    kind = f"the operative wording makes it a {clause_type} clause"
    if difficulty == "easy":
        text = f"{number} {HEADINGS[clause_type]}. {body}"
    elif difficulty == "hard" and rng.random() < 0.5:
        decoy = rng.choice([heading for name, heading in HEADINGS.items() if name != clause_type])
        text = f"{number} {decoy} (continued). {body}"
        kind += f" despite the heading '{decoy}'"
    else:
        text = f"{number} {body}"
    party = BOTH if mutual else obligated
    who = "it binds each party equally" if mutual else f"the duty falls on the {obligated}"
    return {"clause": text, "clause_type": clause_type, "obligated_party": party, "explanation": f"{kind}, and {who}."}


DOMAIN = Domain(
    name="legal",
    program=ClauseReview,
    metric=mean_metric(label_metric("clause_type"), text_metric("obligated_party")),
    data=lambda: generate_examples("legal", make_item, inputs=("clause",), n=DEFAULT_ITEMS),
    task="classification",
    description="Contract clause review: clause type (7 kinds) and the party it obligates (or 'both').",
    input_fields=("clause",),
    label_fields=("clause_type", "obligated_party"),
)
