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
from ax.programs.generation import DEFAULT_ITEMS, for_split, generate_splits, render
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
HEADINGS = {
    "confidentiality": ["Confidentiality", "Non-Disclosure", "Confidential Information", "Secrecy",
                        "Protection of Proprietary Information"],
    "termination": ["Termination", "Term and Termination", "Cancellation", "Ending the Agreement",
                    "Termination for Convenience"],
    "indemnification": ["Indemnification", "Indemnity", "Hold Harmless", "Third-Party Claims", "Defence and Indemnity"],
    "payment": ["Payment Terms", "Fees and Payment", "Invoicing", "Compensation", "Charges"],
    "non_compete": ["Non-Competition", "Restrictive Covenants", "Non-Solicitation", "Exclusivity",
                    "Covenant Not to Compete"],
    "governing_law": ["Governing Law", "Choice of Law", "Applicable Law", "Jurisdiction", "Law of the Contract"],
    "warranty": ["Warranty", "Warranties", "Quality Assurance", "Product Guarantee", "Representations and Warranties"],
}

# {P} is the obligated party, {O} the other. "plain" wordings (easy, medium) name the obligated party as
# the subject; "tricky" ones (hard) are passive or lead with the other party; "mutual" ones bind both and
# may stand in for either of the others. Governing-law clauses always bind both, so theirs are all mutual.
CLAUSES: dict[str, dict[str, list[str]]] = {
    "confidentiality": {
        "plain": [
            "The {P} shall keep all Confidential Information of the {O} strictly confidential and shall not disclose it to any third party.",
            "The {P} will not reveal to anyone outside its organisation any non-public business or technical information received from the {O}.",
            "The {P} must protect the {O}'s proprietary data with at least the care it uses for its own secrets.",
            "The {P} undertakes to treat as secret everything it learns about the {O}'s business, and to share it only with staff who need it.",
            "The {P} shall use the {O}'s confidential materials solely to perform this Agreement and shall return or destroy them on request."],
        "tricky": [
            "Any non-public information that the {O} shares under this Agreement shall be held in confidence by the {P} and used solely to perform this Agreement.",
            "The {O}'s source code, pricing and customer data are to be kept secret by the {P} at all times.",
            "Information disclosed by the {O}, whether orally or in writing, shall not be divulged by the {P} to any third party.",
            "Whatever the {O} lets the {P} see about its customers, plans or finances stays private: the {P} may tell no one.",
            "The {O} may share sensitive know-how with the {P}; in that case the {P} shall guard it as proprietary and make no disclosure."],
        "mutual": [
            "Each party shall keep the other party's Confidential Information secret [for five years|during the term and for three years thereafter].",
            "Neither party shall disclose the terms of this Agreement without the other party's prior written consent.",
            "Both parties agree to treat all non-public information exchanged between them as confidential.",
            "Neither the {P} nor the {O} may reveal the other's trade secrets to any outsider.",
            "The parties shall each protect the proprietary information they receive from one another with reasonable care."],
    },
    "termination": {
        "plain": [
            "The {P} shall give the {O} at least [sixty (60)|ninety (90)|thirty (30)] days' written notice before terminating this Agreement for convenience.",
            "Should the {P} wish to end this Agreement early, the {P} must notify the {O} in writing [three months|sixty days] in advance.",
            "The {P} may cancel this Agreement only by serving [thirty|forty-five] days' written notice on the {O}.",
            "If the {P} decides to walk away from this contract before it expires, it has to tell the {O} in writing [two months|eight weeks] beforehand.",
            "The {P} may terminate this Agreement for convenience upon [ninety|sixty] days' prior written notice to the {O}."],
        "tricky": [
            "This Agreement may be brought to an end by the {P} only after [thirty|sixty] days' prior written notice has been served on the {O}.",
            "The {O} shall receive no less than [sixty|ninety] days' written notice from the {P} before this Agreement is terminated.",
            "Early termination of this Agreement by the {P} is permitted, provided notice is first delivered to the {O} [thirty|forty-five] days ahead.",
            "The {O} is entitled to [two months'|eight weeks'] warning in writing before the {P} may pull out of this contract ahead of its expiry.",
            "Notice of cancellation, to be given by the {P} to the {O} at least [ninety|sixty] days in advance, is required to end this Agreement."],
        "mutual": [
            "Either party may terminate this Agreement immediately upon written notice if the other party materially breaches it and fails to cure within [thirty|fifteen] days.",
            "Each party may end this Agreement on [ninety|sixty] days' written notice to the other.",
            "Both parties have the right to cancel this Agreement by giving the other [thirty|sixty] days' notice in writing.",
            "Should the other side commit a serious breach left unremedied for [two weeks|a month], either of the parties may bring this contract to a close.",
            "This Agreement may be terminated by either party upon [sixty|ninety] days' prior written notice to the other party."],
    },
    "indemnification": {
        "plain": [
            "The {P} shall indemnify, defend and hold harmless the {O} from all claims arising out of the {P}'s negligence.",
            "The {P} agrees to cover all losses, damages and legal fees the {O} incurs because of third-party claims caused by the {G}.",
            "The {P} shall compensate the {O} for any liability, cost or expense resulting from the {P}'s breach of this Agreement.",
            "Should an outsider sue the {O} over the {G}, the {P} will take over the defence and pay whatever judgment or settlement results.",
            "The {P} shall hold the {O} harmless against every third-party claim alleging infringement of intellectual property rights by the {G}."],
        "tricky": [
            "All losses suffered by the {O} as a result of third-party infringement claims relating to the {G} shall be reimbursed by the {P}.",
            "The {O} shall be defended and held harmless by the {P} against any claim arising from the {G}.",
            "Any damages, fines or attorneys' fees incurred by the {O} due to the {P}'s misconduct are to be borne by the {P}.",
            "If the {O} ends up facing a lawsuit because of something wrong with the {G}, it is the {P} who must make the {O} whole.",
            "Claims brought against the {O} by third parties in connection with the {G} shall be indemnified by the {P} in full."],
        "mutual": [
            "Each party shall indemnify the other against third-party claims arising from its own breach of this Agreement.",
            "Both parties shall hold each other harmless from losses caused by their own negligence.",
            "Each party agrees to defend the other against any claim resulting from its own wilful misconduct.",
            "Whichever side causes an outsider to sue the other must bear the resulting costs and damages; this applies to both parties alike.",
            "The parties shall mutually indemnify one another for all losses arising out of their respective breaches."],
    },
    "payment": {
        "plain": [
            "The {P} shall pay each invoice within [thirty (30)|forty-five (45)] days of receipt.",
            "The {P} will settle all amounts due under this Agreement by bank transfer no later than the [15th|last day] of each month.",
            "The {P} shall pay the {O} the fees set out in Schedule B, monthly in arrears.",
            "Each quarter the {P} owes the {O} a flat charge, which it must wire before that quarter begins.",
            "The {P} agrees to remit the purchase price to the {O} within [ten|fifteen] business days of delivery."],
        "tricky": [
            "Upon receipt of a correct invoice from the {O}, the {P} shall remit the fees set out in Schedule B within [30|45] days.",
            "All fees shall be paid by the {P} in US dollars within thirty days; late amounts accrue interest at 1.5% per month.",
            "The {O} shall invoice monthly, and each invoice shall be settled by the {P} within [fifteen|twenty] days.",
            "The {O} is to collect what it is due from the {P} by direct debit on the first business day of every month.",
            "Sums owed to the {O} under this Agreement are to be paid by the {P} without set-off or deduction."],
    },
    "non_compete": {
        "plain": [
            "During the term and for [twelve (12)|twenty-four (24)] months thereafter, the {P} shall not engage in any business that competes with the {O}.",
            "For one year after this Agreement ends, the {P} will not offer competing {G} to any customer of the {O} in the Territory.",
            "The {P} shall not, while this Agreement is in force, work for or invest in any rival of the {O}.",
            "The {P} promises to stay out of the {O}'s market — no rival venture, no similar line of {G} — for [eighteen months|two years] after the contract ends.",
            "The {P} shall refrain from soliciting the {O}'s customers or employees for [six|twelve] months after termination."],
        "tricky": [
            "Nothing in this Agreement restricts the {O} from working with others; the {P}, however, shall not during the term provide competing {G} to any rival of the {O}.",
            "The {O}'s competitors shall not be served by the {P} during the term of this Agreement.",
            "No business competing with the {O} shall be carried on by the {P} within the Territory for [one year|two years] after termination.",
            "While the {O} stays free to deal with anyone, the {P} gives up the right to sell similar {G} in the {O}'s territory until [a year|two years] after the deal ends.",
            "Any activity in competition with the {O} is prohibited to the {P} for the duration of this Agreement."],
    },
    "governing_law": {
        "plain": [
            "[This Agreement|This Contract|This Agreement and any dispute arising from it] shall be governed by [and construed in accordance with|] the laws of {state}.",
            "Any dispute between the {P} and the {O} will be decided under the law of {state}.",
            "The laws of {state} govern the interpretation and enforcement of this Agreement.",
            "Whatever disagreement the {P} and the {O} may have about this deal, the rules of {state} are the ones a court will apply.",
            "This Agreement is subject to and shall be interpreted under the laws of {state}."],
        "tricky": [
            "The {O} acknowledges that this Agreement, including any claim brought by the {P}, is governed by the laws of {state}, without regard to conflict-of-laws principles.",
            "The {P} agrees that the substantive law of {state} shall apply to any claim it may bring against the {O}.",
            "Notwithstanding the place of delivery of the {G}, the {O} accepts that this Agreement is construed under the laws of {state}.",
            "The {P} cannot invoke the law of its home country: both it and the {O} accept that only the law of {state} decides questions about this contract.",
            "Regardless of the {P}'s place of business, all rights under this Agreement are determined by the law of {state}."],
    },
    "warranty": {
        "plain": [
            "The {P} warrants that the {G} will be free from defects in materials and workmanship for [twelve (12)|six (6)] months.",
            "The {P} promises that the {G} will perform substantially as described in the documentation for [90|180] days after delivery.",
            "The {P} represents and warrants that the {G} will comply with all applicable laws and specifications.",
            "The {P} stands behind the {G}: should faulty workmanship show up within [a year|two years], it will put it right free of charge.",
            "The {P} guarantees that the {G} will be of merchantable quality and fit for the purpose stated in this Agreement."],
        "tricky": [
            "Except as expressly stated, the {O} receives the {G} 'as is'; the only assurance given is that the {P} guarantees the {G} will conform to the specifications for six months.",
            "The {O} is assured by the {P} that the {G} will be free of material defects for [one year|ninety days].",
            "Conformity of the {G} with the agreed specifications is warranted by the {P} for [twelve|six] months from acceptance.",
            "The {O} gets one promise about quality, and it comes from the {P}: the {G} will do what the documentation says for [a year|six months].",
            "No warranty is given by the {O}; the {P}, for its part, warrants that the {G} will operate without error for [90|180] days."],
    },
}


def make_item(rng: random.Random, difficulty: str, split: str) -> dict:
    clause_type = rng.choice(list(CLAUSES))
    provider, payer, goods = rng.choice(for_split(PARTIES, split))
    role = ROLE[clause_type]
    mutual = role == "both" or ("mutual" in CLAUSES[clause_type] and rng.random() < 0.3)
    obligated, other = (payer, provider) if role == "payer" or (role == "either" and rng.random() < 0.5) else (provider, payer)
    kind = "mutual" if mutual and role != "both" else "tricky" if difficulty == "hard" else "plain"
    templates = CLAUSES[clause_type][kind]
    template = rng.choice(for_split(templates, split))
    body = render(rng, template, P=obligated, O=other, G=goods, state=rng.choice(for_split(STATES, split)))
    # Numbered from the wording, so a clause never reappears under a different number.
    digest = zlib.crc32(body.encode())
    number = f"{2 + digest % 17}.{1 + digest // 17 % 9}"
    cue = f"the operative wording makes it a {clause_type} clause"
    if difficulty == "easy":
        text = f"{number} {rng.choice(for_split(HEADINGS[clause_type], split))}. {body}"
    elif difficulty == "hard" and rng.random() < 0.5:
        decoy = rng.choice([heading for name, pool in HEADINGS.items() if name != clause_type
                            for heading in for_split(pool, split)])
        text = f"{number} {decoy} (continued). {body}"
        cue += f" despite the heading '{decoy}'"
    else:
        text = f"{number} {body}"
    party = BOTH if mutual else obligated
    who = "it binds each party equally" if mutual else f"the duty falls on the {obligated}"
    return {"clause": text, "clause_type": clause_type, "obligated_party": party,
            "family": f"{clause_type}/{kind}/t{templates.index(template)}", "explanation": f"{cue}, and {who}."}


DOMAIN = Domain(
    name="legal",
    program=ClauseReview,
    metric=mean_metric(label_metric("clause_type"), text_metric("obligated_party")),
    data=lambda: generate_splits("legal", make_item, inputs=("clause",), n=DEFAULT_ITEMS),
    task="classification",
    description="Contract clause review: clause type (7 kinds) and the party it obligates (or 'both').",
    input_fields=("clause",),
    label_fields=("clause_type", "obligated_party"),
)
