"""Support agent: name the request, look up the store policy that covers it, apply the policy's rule.

Three steps: the `classify` predictor names the intent; retrieval (BM25, no LM) finds the policy
passage for that intent and the product in the message; the `answer` predictor cites the passage
and applies its rule. Each intent has one policy per product category, so retrieval needs the
message's product as well as the intent. Every rule compares one number the customer gives
(days since delivery, months since purchase, hours since ordering, days late, dollars of a price
drop) with the policy's limit, and asks for it when the message leaves it out.

Easy messages give a number far from the limit; medium ones a number nearer to it; hard ones a
number close to the limit beside a reference number that is not the one the rule needs. Each split
has its own message templates, detail phrasings, products, openers and closers (`for_split`).
Examples carry the gold policy passage under `policy`, the name the `answer` predictor reads it
by, so label-based training shows that predictor the passage it should see.
"""

from __future__ import annotations

import random
from typing import Literal, NamedTuple

import dspy

from ax.context.retrieval import Document
from ax.programs.domain import Domain
from ax.programs.generation import for_split, generate_splits, render, sentence_case
from ax.programs.metrics import Step, label_metric, mean_metric, step_metric
from ax.programs.modules import context_field
from ax.programs.passages import PassageIndex, cite, retrieval_metric

Intent = Literal["refund", "warranty_repair", "cancel_order", "late_delivery", "price_match", "damaged_item"]
Resolution = Literal["approve", "deny", "escalate", "ask_for_info"]
ITEMS = 240  # 144 train / 48 dev / 48 test


class Rule(NamedTuple):
    """How the policies of one intent read, and how a customer states (or leaves out) the number they need."""

    title: str  # opens the passage; its words are the intent's, so the intent steers retrieval
    text: str  # the rule, with {limit}, {within} (the number is at most the limit) and {beyond}
    amount: str  # a number with its unit, for the explanation
    measure: str  # what the number measures, around an amount
    unstated: str  # what a message without the number leaves out
    given: tuple[str, ...]  # the detail with its number {n}
    vague: tuple[str, ...]  # the detail without a number


# How long ago an item was delivered, with and without the number (refunds and damage reports both need it).
DELIVERED = (("it was delivered {n} days ago", "it arrived {n} days ago", "I received it {n} days ago",
              "it came {n} days ago", "delivery was {n} days back"),
             ("it was delivered a while ago", "it arrived recently", "I received it some time ago",
              "it came not long ago", "delivery was a little while back"))
RULES: dict[str, Rule] = {
    "refund": Rule(
        "Refund", "Delivered within {limit} days: {within}. Delivered more than {limit} days ago: {beyond}. "
        "Delivery date not given: ask_for_info.", "{n} days", "delivered {} ago", "when it was delivered",
        *DELIVERED),
    "warranty_repair": Rule(
        "Warranty repair", "Bought within {limit} months: {within}. Bought more than {limit} months ago: {beyond}. "
        "Purchase date not given: ask_for_info.", "{n} months", "bought {} ago", "when it was bought",
        ("I bought it {n} months ago", "it is {n} months old", "I purchased it {n} months ago",
         "I have owned it for {n} months", "it was bought {n} months back"),
        ("I bought it a while ago", "it is fairly new", "I purchased it some time ago",
         "I have owned it for a bit", "it was bought a while back")),
    "cancel_order": Rule(
        "Cancel order", "Ordered within {limit} hours: {within}. Ordered more than {limit} hours ago: {beyond}. "
        "Order time not given: ask_for_info.", "{n} hours", "ordered {} ago", "when the order was placed",
        ("I ordered it {n} hours ago", "I placed the order {n} hours ago", "the order went in {n} hours ago",
         "I bought it online {n} hours ago", "I clicked buy {n} hours ago"),
        ("I ordered it earlier", "I placed the order recently", "the order went in a bit ago",
         "I bought it online not long ago", "I clicked buy earlier on")),
    "late_delivery": Rule(
        "Late delivery", "Up to {limit} days late: {within}. More than {limit} days late: {beyond}. "
        "Delay not given: ask_for_info.", "{n} days", "{} late", "how late it is",
        ("it is {n} days late", "it is now {n} days overdue", "it is {n} days past the promised date",
         "it should have arrived {n} days ago", "it is running {n} days behind"),
        ("it is still not here", "nothing has come yet", "it has still not shown up", "there is no sign of it",
         "it is still on its way")),
    "price_match": Rule(
        "Price match", "Price drop up to ${limit}: {within}. Price drop over ${limit}: {beyond}. "
        "Drop amount not given: ask_for_info.", "${n}", "a {} price drop", "how much the price dropped",
        ("the price dropped by ${n}", "it is now ${n} cheaper", "it is on sale for ${n} less",
         "the price fell ${n}", "your site now lists it ${n} lower"),
        ("the price dropped", "it is now cheaper", "it is on sale", "the price fell", "your site now lists it lower")),
    "damaged_item": Rule(
        "Damaged item", "Reported within {limit} days of delivery: {within}. Reported later: {beyond}. "
        "Delivery date not given: ask_for_info.", "{n} days", "delivered {} ago", "when it was delivered",
        *DELIVERED),
}
CATEGORIES = {
    "clothing": ("jacket", "jeans", "dress", "sneakers", "sweater"),
    "electronics": ("laptop", "headphones", "tablet", "camera", "speaker"),
    "home goods": ("sofa", "lamp", "rug", "blender", "kettle"),
}


class Policy(NamedTuple):
    id: str
    intent: str
    category: str
    limit: int
    within: str  # resolution when the customer's number is at most the limit
    beyond: str  # resolution when it is over

    def document(self) -> Document:
        rule = RULES[self.intent]
        items = ", ".join(CATEGORIES[self.category])
        text = f"{rule.title} for {self.category} ({items}). " + rule.text.format(
            limit=self.limit, within=self.within, beyond=self.beyond)
        return Document(id=self.id, text=text)


POLICIES = (
    Policy("POL-REFUND-1", "refund", "clothing", 30, "approve", "deny"),
    Policy("POL-REFUND-2", "refund", "electronics", 14, "approve", "escalate"),
    Policy("POL-REFUND-3", "refund", "home goods", 60, "approve", "deny"),
    Policy("POL-WARRANTY-1", "warranty_repair", "clothing", 6, "approve", "deny"),
    Policy("POL-WARRANTY-2", "warranty_repair", "electronics", 24, "approve", "deny"),
    Policy("POL-WARRANTY-3", "warranty_repair", "home goods", 12, "approve", "escalate"),
    Policy("POL-CANCEL-1", "cancel_order", "clothing", 24, "approve", "deny"),
    Policy("POL-CANCEL-2", "cancel_order", "electronics", 6, "approve", "deny"),
    Policy("POL-CANCEL-3", "cancel_order", "home goods", 48, "approve", "escalate"),
    Policy("POL-LATE-1", "late_delivery", "clothing", 5, "deny", "approve"),
    Policy("POL-LATE-2", "late_delivery", "electronics", 3, "deny", "approve"),
    Policy("POL-LATE-3", "late_delivery", "home goods", 10, "deny", "escalate"),
    Policy("POL-PRICE-1", "price_match", "clothing", 20, "approve", "escalate"),
    Policy("POL-PRICE-2", "price_match", "electronics", 50, "approve", "escalate"),
    Policy("POL-PRICE-3", "price_match", "home goods", 100, "approve", "deny"),
    Policy("POL-DAMAGE-1", "damaged_item", "clothing", 14, "approve", "deny"),
    Policy("POL-DAMAGE-2", "damaged_item", "electronics", 7, "approve", "escalate"),
    Policy("POL-DAMAGE-3", "damaged_item", "home goods", 3, "approve", "deny"),
)
POLICY_DOCUMENTS = [policy.document() for policy in POLICIES]
PolicyId = Literal[tuple(policy.id for policy in POLICIES)]
POLICY_INDEX = PassageIndex(POLICY_DOCUMENTS)


def policy_query(intent: str, message: str) -> str:
    """The retrieval query: the intent's words (a label's '_' would glue them into one) and the message."""
    return f"{str(intent).replace('_', ' ')} {message}"


class ClassifyRequest(dspy.Signature):
    """Name the customer's request. refund: wants money back for an item they send back; warranty_repair:
    an item stopped working and needs fixing; cancel_order: wants an order cancelled; late_delivery: an
    order has not arrived on time; price_match: the price dropped after they paid; damaged_item: the item
    arrived broken or damaged."""

    context: str = context_field()
    message: str = dspy.InputField(desc="the customer's message")
    intent: Intent = dspy.OutputField()


class ApplyPolicy(dspy.Signature):
    """Apply the store policy to the customer's request. policy_id: the id at the start of the policy.
    resolution: what the policy's rule decides for the number the customer gives (days, months, hours
    or dollars) compared with the policy's limit; ask_for_info when the message gives no such number."""

    context: str = context_field()
    message: str = dspy.InputField(desc="the customer's message")
    intent: str = dspy.InputField(desc="the type of request")
    policy: str = dspy.InputField(desc="the policy that covers the request, starting with its id")
    policy_id: PolicyId = dspy.OutputField()
    resolution: Resolution = dspy.OutputField()


class SupportAgent(dspy.Module):
    """classify -> retrieve the policy (BM25 on intent and message) -> answer with the policy's id and decision."""

    def __init__(self) -> None:
        super().__init__()
        self.classify = dspy.Predict(ClassifyRequest)
        self.answer = dspy.Predict(ApplyPolicy)

    def forward(self, message: str, context: str = "") -> dspy.Prediction:
        intent = self.classify(context=context, message=message).intent
        policy = POLICY_INDEX.top(policy_query(intent, message))
        answer = self.answer(context=context, message=message, intent=intent, policy=cite(policy))
        return dspy.Prediction(intent=intent, retrieved_id=policy.id, policy_id=answer.policy_id,
                               resolution=answer.resolution)


# Message templates per intent: {item} is the product, {detail} ({Detail} capitalized) the number
# the rule needs or a vague stand-in for it.
BODIES: dict[str, tuple[str, ...]] = {
    "refund": ("I want a refund for the {item}; {detail}.", "Please refund my {item}, {detail}.",
               "Can I get my money back for the {item}? {Detail}.",
               "I'd like to return the {item} for a refund - {detail}.",
               "The {item} isn't right for me and I want a refund. {Detail}."),
    "warranty_repair": ("My {item} stopped working and {detail}. Can it be repaired under warranty?",
                        "The {item} is faulty; {detail}. Is the repair covered?",
                        "Warranty question: {detail} and now the {item} has a fault.",
                        "Please fix my {item} under the warranty, {detail}.",
                        "The {item} no longer works. {Detail}. Will you repair it?"),
    "cancel_order": ("Please cancel my order for the {item}; {detail}.", "I want to cancel the {item} order. {Detail}.",
                     "Can you cancel the {item}? {Detail}.",
                     "I changed my mind about the {item} and need to cancel the order, {detail}.",
                     "Cancel the order for the {item} please - {detail}."),
    "late_delivery": ("Where is my {item}? {Detail}.", "My {item} order has not arrived and {detail}.",
                      "The {item} delivery is late: {detail}.", "Still waiting for the {item}; {detail}.",
                      "My delivery of the {item} is delayed - {detail}."),
    "price_match": ("I bought the {item} and {detail}. Can you match the price?",
                    "Price match request: {detail} on the {item} I bought.",
                    "Since I paid, {detail} on the {item}. Can I get the difference?",
                    "Could you price match my {item}? {Detail}.",
                    "I just saw that {detail} for the {item} I ordered."),
    "damaged_item": ("My {item} arrived damaged; {detail}.", "The {item} was broken in the box and {detail}.",
                     "The {item} came with a crack, {detail}.",
                     "Damaged item: the {item} was scratched when I opened it, {detail}.",
                     "My {item} showed up dented. {Detail}."),
}
OPENERS = ["", "Hi. ", "Hello. ", "Hey there. ", "Good morning. ", "Dear support: ", "Hi team. ", "Evening. ",
           "Quick question: ", "Hello again. "]
CLOSERS = ["", " Thanks.", " Regards, {name}.", " Please help.", " Thank you, {name}", " Cheers.", " Best, {name}",
           " Many thanks.", " - {name}", " Thanks in advance."]
NAMES = ["Ana", "Ben", "Chloe", "Dev", "Elif", "Femi", "Grace", "Hiro", "Ines", "Jonas"]


def _number(rng: random.Random, limit: int, within: bool, difficulty: str) -> int:
    """A number within the limit or over it: far from it when easy, close to it when hard."""
    near = max(1, limit // 5)
    if within:
        low, high = {"easy": (1, max(1, limit // 2)), "medium": (max(1, limit // 2), limit),
                     "hard": (max(1, limit - near), limit)}[difficulty]
    else:
        low, high = {"easy": (2 * limit + 1, 3 * limit), "medium": (limit + 1, 2 * limit),
                     "hard": (limit + 1, limit + near)}[difficulty]
    return rng.randint(low, high)


def make_item(rng: random.Random, difficulty: str, split: str) -> dict:
    policy = rng.choice(POLICIES)
    rule = RULES[policy.intent]
    item = rng.choice(for_split(CATEGORIES[policy.category], split))
    case = rng.choice(("within", "beyond", "unstated"))
    if case == "unstated":
        detail, resolution = rng.choice(for_split(rule.vague, split)), "ask_for_info"
        why = f"the message does not say {rule.unstated}: ask_for_info"
    else:
        n = _number(rng, policy.limit, case == "within", difficulty)
        detail, resolution = rng.choice(for_split(rule.given, split)).format(n=n), getattr(policy, case)
        where = "within" if case == "within" else "over"
        why = (f"{rule.measure.format(rule.amount.format(n=n))} is {where} its limit of "
               f"{rule.amount.format(n=policy.limit)}: {resolution}")
    templates = BODIES[policy.intent]
    template = rng.choice(for_split(templates, split))
    body = render(rng, template, item=item, detail=detail, Detail=sentence_case(detail))
    if difficulty == "hard":  # a number the rule does not use
        body = f"Ref #{rng.randint(10000, 99999)}. {body}"
    name = rng.choice(for_split(NAMES, split))
    message = rng.choice(for_split(OPENERS, split)) + body + rng.choice(for_split(CLOSERS, split)).format(name=name)
    document = POLICY_DOCUMENTS[POLICIES.index(policy)]
    return {
        "message": message, "intent": policy.intent, "policy_id": policy.id, "resolution": resolution,
        "policy": cite(document),
        "explanation": f"{policy.intent} request about the {item} ({policy.category}), so {policy.id} applies; {why}.",
        "family": f"{policy.id}/{case}/b{templates.index(template)}",
    }


METRIC = step_metric(
    Step("classify", label_metric("intent"), ("classify",)),
    Step("retrieve", retrieval_metric("policy_id"), ("classify",)),
    Step("answer", mean_metric(label_metric("policy_id"), label_metric("resolution")), ("answer",)),
)

DOMAIN = Domain(
    name="support_agent",
    program=SupportAgent,
    metric=METRIC,
    data=lambda: generate_splits("support_agent", make_item, inputs=("message",), n=ITEMS),
    task="classification",
    description="Support agent: classify the request, retrieve the store policy, apply its rule (three steps).",
    input_fields=("message",),
    label_fields=("intent", "policy_id", "resolution"),
)
