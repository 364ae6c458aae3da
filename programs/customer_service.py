"""Customer service: the intent of a customer's message, for routing to the right queue.

Easy messages name the request outright ("refund", "cancel"); medium ones describe it
without the keyword; hard ones rule out other intents by name ("I don't want a refund,
just ...") or mention other topics before the real request.

Each split has its own phrasings, products, openers, closers and names (`for_split`), so a test
message is worded in a way training never saw.
"""

from __future__ import annotations

import random
from typing import Literal

import dspy

from ax.programs.domain import Domain
from ax.programs.generation import DEFAULT_ITEMS, for_split, generate_splits, render
from ax.programs.metrics import label_metric
from ax.programs.modules import PredictProgram, context_field

Intent = Literal["refund", "order_status", "cancel_order", "technical_issue", "billing", "account_access"]
INTENTS: tuple[Intent, ...] = ("refund", "order_status", "cancel_order", "technical_issue", "billing", "account_access")


class ClassifyIntent(dspy.Signature):
    """Route a customer message by its main request. refund: money back for a returned or faulty
    item; order_status: where an order is or when it arrives; cancel_order: stop an order not yet
    delivered; technical_issue: a product or app not working; billing: charges, invoices, payment
    methods; account_access: logging in, passwords, locked accounts."""

    context: str = context_field()
    message: str = dspy.InputField(desc="the customer's message")
    intent: Intent = dspy.OutputField()


class IntentRouter(PredictProgram):
    signature = ClassifyIntent


# Each entry: (message template, the cue that decides the intent).
MESSAGES: dict[str, dict[str, list[tuple[str, str]]]] = {
    "refund": {
        "easy": [("I [want|would like|am requesting] a refund for the {product} (order {order}).", "asks for a refund"),
                 ("Please refund my order {order}, the {product} is not what I expected.", "writes 'please refund'"),
                 ("Requesting a full refund for order {order}, please.", "requests a refund"),
                 ("Can I get a refund on the {product}? Order {order}.", "asks to get a refund")],
        "medium": [("The {product} arrived [cracked|broken|in the wrong size] and I'd like my money back.", "wants money back for a faulty item"),
                   ("I sent the {product} back two weeks ago and the money still isn't on my card.", "is waiting for money back on a return"),
                 ("Returned the {product} last week; when will the payment come back to my account?", "waits for the payment for a return"),
                 ("The {product} was faulty so I posted it back - I would like to be reimbursed.", "wants to be reimbursed for a faulty item")],
        "hard": [("The {product} was delivered on time and tracking is fine, but it stopped working after a day - I just want my money returned, not a replacement.", "delivery is fine; the request is money back"),
                 ("Not asking about my bill or the delivery. The {product} from order {order} is faulty and I'd like the amount put back on my card.", "billing and delivery are ruled out; wants the amount back"),
                 ("Please don't cancel anything or send a new one; the {product} I kept is defective and I just want to be reimbursed.", "cancel and replacement ruled out; wants reimbursement"),
                 ("Tracking worked and the login is fine. What I need is the cost of the broken {product} returned to my account.", "tracking and login fine; wants the cost returned")],
    },
    "order_status": {
        "easy": [("Where is my order {order}? [Can you give me the delivery status?|What's the tracking status?]", "asks where the order is"),
                 ("Could you check the status of order {order} for the {product}?", "asks for the order status"),
                 ("What is the delivery status of order {order}?", "asks for the delivery status"),
                 ("Order {order}: has it shipped yet?", "asks whether the order shipped")],
        "medium": [("It's been ten days since I ordered the {product} and it still hasn't shown up. When will it get here?", "asks when the order arrives"),
                   ("The tracking page for {order} hasn't changed since Monday. Is my {product} still coming?", "asks whether the order is still coming"),
                 ("My {product} was due on Friday and nothing has come. Any update on where it is?", "asks for an update on a late parcel"),
                 ("The courier page just says 'in transit' for {order}. Roughly how much longer for the {product}?", "asks how long until delivery")],
        "hard": [("I don't want a refund or to cancel - I just need to know when the {product} will arrive.", "refund and cancel are ruled out; asks when it arrives"),
                 ("My card was charged for order {order} and that's fine, but I have no idea where the {product} is right now.", "the charge is fine; asks where the order is"),
                 ("The payment went through fine and I don't need my money back - I only want a delivery date for the {product}.", "payment fine, refund ruled out; wants a delivery date"),
                 ("Nothing is broken and I'm keeping the order, but {order} has been stuck at the depot for a week. Where is it now?", "nothing faulty, keeping it; asks where it is")],
    },
    "cancel_order": {
        "easy": [("Please cancel my order {order} for the {product}.", "writes 'please cancel'"),
                 ("I need to cancel order {order} [right away|today].", "asks to cancel"),
                 ("Cancel order {order}, please.", "asks to cancel"),
                 ("I would like to cancel my {product} order ({order}).", "wants to cancel the order")],
        "medium": [("I ordered the {product} by mistake an hour ago - please stop it before it ships.", "wants the order stopped before it ships"),
                   ("Changed my mind about the {product} (order {order}); I don't want it sent anymore.", "no longer wants the order sent"),
                 ("Found the {product} cheaper elsewhere - please make sure order {order} never gets dispatched.", "wants the order not dispatched"),
                 ("Ordered the {product} twice by accident; please scrap the second one before it goes out.", "wants a duplicate order scrapped")],
        "hard": [("I'm not asking for a refund since it hasn't shipped yet; I just don't want the {product} anymore, so please call off order {order}.", "not a refund (nothing shipped); wants the order called off"),
                 ("The app works fine and I can log in, but I'd like to withdraw order {order} before it leaves the warehouse.", "app and login are fine; wants the order withdrawn"),
                 ("No money has been taken yet so this isn't about a refund - just stop order {order} from being sent.", "no refund needed; wants the order stopped"),
                 ("The website works and tracking is clear. I simply no longer want the {product}; kill order {order} before it ships.", "site and tracking fine; wants the order killed")],
    },
    "technical_issue": {
        "easy": [("The {product} app [keeps crashing|won't open|shows error {code}] - I need technical support.", "asks for technical support"),
                 ("Technical problem: my {product} won't [turn on|connect to Wi-Fi|charge].", "reports a technical problem"),
                 ("I need technical help: the {product} shows error {code}.", "asks for technical help"),
                 ("Tech support please - the {platform} won't load.", "asks for tech support")],
        "medium": [("Since the last update the {platform} freezes every time I open the checkout page.", "reports that the app freezes"),
                   ("My {product} keeps disconnecting from my phone every few minutes.", "reports that the device keeps disconnecting"),
                 ("Every time I press sync on the {product} the screen goes black and it restarts.", "describes the device restarting"),
                 ("The {platform} logs me in fine but the buttons on the order page do nothing when I tap them.", "describes buttons not responding")],
        "hard": [("Billing is fine and the order arrived on time, but the {product} won't pair over Bluetooth no matter what I try.", "billing and delivery are fine; the device won't pair"),
                 ("I don't need a refund, I just want the {product} to work - it shows error {code} whenever it starts.", "refund is ruled out; the device shows an error"),
                 ("This isn't a billing question and I don't want it cancelled: the {product} firmware update failed and now it won't boot.", "billing and cancel ruled out; the device won't boot"),
                 ("Delivery was quick and the price was right, yet the {product} overheats and shuts off after ten minutes.", "delivery and price fine; the device overheats")],
    },
    "billing": {
        "easy": [("I have a billing question: [I was charged twice|my invoice shows the wrong amount] for order {order}.", "has a billing question about a charge"),
                 ("Please update the payment method on my account to my new card ending in {digits}.", "asks to change the payment method"),
                 ("Question about my bill: there is a charge of {amount} on order {order}.", "asks about a charge on the bill"),
                 ("Please send me a corrected invoice for order {order}.", "asks for a corrected invoice")],
        "medium": [("My statement shows two identical payments of {amount} for a single purchase.", "sees a duplicate payment on the statement"),
                   ("Why does this month's invoice include a {amount} fee I don't recognise?", "asks about an invoice fee"),
                 ("My bank shows {amount} taken by you twice on the same day.", "sees a double charge at the bank"),
                 ("The receipt for the {product} lists tax that should not apply to my business account.", "disputes tax on a receipt")],
        "hard": [("I can log in fine, but the invoice in my account lists a {amount} subscription fee I never signed up for.", "login works; disputes an invoice fee"),
                 ("The {product} arrived and works great; however, I was charged {amount} instead of the advertised price.", "the product is fine; the charged amount is wrong"),
                 ("The {product} works and arrived on time, so no return - but the {amount} shipping fee on the invoice was supposed to be free.", "product and delivery fine; disputes an invoice fee"),
                 ("I can sign in without trouble; my question is why my card ending in {digits} was billed {amount} for a plan I cancelled.", "sign-in fine; questions a card charge")],
    },
    "account_access": {
        "easy": [("I can't log in to my account on the {platform}[; the password reset isn't working|].", "cannot log in"),
                 ("Please help me reset the password for {email}, I'm locked out.", "is locked out and needs a password reset"),
                 ("I forgot my password and can't sign in to the {platform}.", "cannot sign in"),
                 ("My account {email} is locked - please unlock it.", "account locked")],
        "medium": [("The verification code never arrives [at {phone}|by text|by email], so I'm stuck on the sign-in screen of the {platform}.", "is stuck on the sign-in screen"),
                   ("It keeps saying {email} isn't recognised when I try to get into my profile.", "cannot get into the profile"),
                 ("Two-factor codes for {email} expire before they reach my phone, so I never get past the login.", "never gets past the login"),
                 ("After the update the {platform} keeps sending me back to the sign-in page.", "keeps being sent back to sign-in")],
        "hard": [("My payment for order {order} went through and the order is fine, but I'm locked out of the {platform} after too many password attempts.", "payment and order are fine; locked out"),
                 ("I don't want to cancel anything - I just can't get past the {platform} login page since I changed my number to {phone}.", "cancel is ruled out; cannot get past the login"),
                 ("My parcel arrived and the charge is right; the problem is the {platform} says my password is wrong even after a reset.", "parcel and charge fine; cannot log in"),
                 ("Not looking for a refund. I just need to get back into {email}, which was locked after someone tried to sign in.", "refund ruled out; locked out of the account")],
    },
}
PRODUCTS = ["blender", "pair of running shoes", "laptop stand", "coffee grinder", "winter jacket",
            "phone case", "desk lamp", "headphones", "yoga mat", "backpack", "smart watch", "air fryer",
            "robot vacuum", "electric toothbrush", "camping stove"]
OPENERS = ["", "Hi, ", "Hello team, ", "Hey there. ", "Good morning, ", "To whom it may concern: ", "Dear support, ",
           "Hi all - ", "Evening, ", "Quick one: "]
CLOSERS = ["", " Thanks.", " Please help.", " Regards, {name}.", " Thank you in advance.", " Cheers, {name}",
           " Appreciate it.", " Best, {name}", " Waiting for your reply.", " - {name}"]
NAMES = ["Ana", "Ben", "Chloe", "Dev", "Elif", "Femi", "Grace", "Hiro", "Ines", "Jonas"]
PLATFORMS = ["mobile app", "website", "desktop app", "tablet app", "smart TV app"]


def make_item(rng: random.Random, difficulty: str, split: str) -> dict:
    intent = rng.choice(INTENTS)
    templates = MESSAGES[intent][difficulty]
    template, cue = rng.choice(for_split(templates, split))
    name = rng.choice(for_split(NAMES, split))
    body = render(rng, template, product=rng.choice(for_split(PRODUCTS, split)), order=f"#{rng.randint(10000, 99999)}",
                  code=f"E{rng.randint(10, 99)}", amount=f"${rng.randint(5, 300)}.{rng.randint(0, 99):02d}",
                  platform=rng.choice(for_split(PLATFORMS, split)), digits=f"{rng.randint(0, 9999):04d}",
                  phone=f"+1 555 01{rng.randint(0, 99):02d}", email=f"{name.lower()}{rng.randint(1, 99)}@example.com")
    message = rng.choice(for_split(OPENERS, split)) + body + rng.choice(for_split(CLOSERS, split)).format(name=name)
    family = f"{intent}/{difficulty}/t{templates.index((template, cue))}"
    return {"message": message, "intent": intent, "explanation": f"cue: {cue}; that is {intent}.", "family": family}


DOMAIN = Domain(
    name="customer_service",
    program=IntentRouter,
    metric=label_metric("intent"),
    data=lambda: generate_splits("customer_service", make_item, inputs=("message",), n=DEFAULT_ITEMS),
    task="classification",
    description="Intent of a customer message (refund, order status, cancel, technical, billing, account access).",
    input_fields=("message",),
    label_fields=("intent",),
)
