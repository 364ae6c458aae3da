"""Tool agent: answer a numeric question about a parts catalogue by calling tools (`dspy.ReAct`).

The agent has two tools: `lookup(item)` reads one catalogue entry (unit price, weight, stock) and
`calculator(expression)` does arithmetic. Each turn the `agent.react` predictor writes a thought
and picks a tool and its arguments; the tool's observation joins the trajectory; after `finish`
(or `MAX_STEPS` turns) the `agent.extract` predictor reads the trajectory and gives the answer.

Easy questions need one lookup and read the answer off it; medium ones one lookup and one
multiplication (7 units at the unit price); hard ones two lookups and arithmetic on both (a
combined order, a difference). Each split asks about its own catalogue items with its own
phrasings (`for_split`), so no test question names an item or uses a wording seen in training.
"""

from __future__ import annotations

import ast
import difflib
import operator
import random
import re
from typing import Any, NamedTuple

import dspy

from ax.programs.domain import Domain
from ax.programs.generation import for_split, generate_splits, render, sentence_case
from ax.programs.metrics import Step, numeric_metric, read_field, step_metric
from ax.programs.modules import context_field

ITEMS = 240  # 144 train / 48 dev / 48 test
MAX_STEPS = 5  # tool calls, `finish` included: a hard question needs four
MAX_EXPRESSION = 200  # characters the calculator reads


class Part(NamedTuple):
    name: str  # kind and code, as questions name it: "bracket K-12"
    price: float  # dollars per unit
    weight: float  # kg per unit
    stock: int  # units in stock

    def entry(self) -> str:
        return f"{self.name}: unit price ${self.price:.2f}, weight {self.weight:g} kg, {self.stock} in stock"


CATALOGUE = {part.name: part for part in (
    Part("bracket K-12", 3.50, 0.45, 120), Part("hinge H-3", 1.25, 0.12, 340), Part("gasket G-40", 0.80, 0.05, 900),
    Part("valve V-7", 14.20, 1.30, 45), Part("pulley P-22", 9.75, 2.10, 60), Part("spring S-5", 0.35, 0.02, 1500),
    Part("bearing B-18", 6.40, 0.30, 210), Part("clamp C-9", 2.15, 0.25, 480), Part("flange F-31", 11.60, 3.40, 75),
    Part("sprocket R-14", 7.90, 0.85, 130), Part("washer W-2", 0.10, 0.01, 5000), Part("bolt T-8", 0.45, 0.06, 2600),
    Part("nozzle N-6", 4.30, 0.15, 310), Part("coupling U-11", 8.25, 0.95, 95), Part("gear D-25", 12.80, 1.75, 55),
    Part("lever L-4", 5.60, 0.70, 160), Part("filter X-19", 3.95, 0.40, 270), Part("pump M-2", 86.50, 9.20, 12),
    Part("motor E-15", 129.00, 14.50, 8), Part("switch Q-7", 2.70, 0.08, 650), Part("sensor Y-33", 18.40, 0.20, 140),
    Part("cable A-50", 6.10, 1.20, 220), Part("hose J-16", 4.85, 0.90, 185), Part("caster Z-3", 3.20, 0.55, 400),
    Part("latch O-13", 1.90, 0.18, 530), Part("piston I-21", 22.75, 2.60, 38), Part("rivet T-2", 0.05, 0.01, 8000),
    Part("shaft H-27", 15.30, 4.80, 66), Part("handle K-5", 2.45, 0.35, 350), Part("panel F-9", 24.90, 6.30, 42),
)}


def _squash(text: str) -> str:
    return re.sub(r"[\W_]", "", str(text).casefold())


def _digits(text: str) -> str:
    return "".join(re.findall(r"\d", str(text)))


# Every way an item may be named, squashed: "bracketk12", its code "k12", its kind "bracket", "k12bracket".
_NAMES = {key: part for part in CATALOGUE.values()
          for kind, code in [part.name.split(" ")]
          for key in (_squash(part.name), _squash(code), _squash(kind), _squash(code + kind))}


def find_part(item: str) -> Part | None:
    """The catalogue entry `item` names, up to case, spacing and small misspellings; None when none fits.

    A name's digits must match exactly: "bracket K-13" is a different part, not a typo of K-12.
    """
    query, digits = _squash(item), _digits(item)
    candidates = [key for key, part in _NAMES.items() if not digits or _digits(part.name) == digits]
    within = [key for key in candidates if key == _squash(_NAMES[key].name) and key in query]  # "the bracket K-12 part"
    match = within or (difflib.get_close_matches(query, candidates, n=1, cutoff=0.85) if query else [])
    return _NAMES[match[0]] if match else None


def lookup(item: str) -> str:
    """Look up a catalogue item by name, e.g. "bracket K-12": its unit price, weight and stock."""
    part = find_part(item)
    return part.entry() if part else f"unknown item: {item}"


_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
              ast.USub: operator.neg, ast.UAdd: operator.pos}


def _evaluate(node: ast.AST) -> float:
    # Only numbers and + - * / are walked; any other node (a name, a call, **) is refused, never run.
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_evaluate(node.operand))
    raise ValueError(f"only numbers, + - * / and parentheses are allowed, not {ast.unparse(node)!r}")


def calculator(expression: str) -> str:
    """Evaluate arithmetic with + - * / and parentheses, e.g. "7 * 3.50"."""
    text = str(expression)
    if len(text) > MAX_EXPRESSION:
        return f"error: the expression is longer than {MAX_EXPRESSION} characters"
    # Written the way people write sums: "$3.50", "1,200", "7 × 3.5".
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text.replace("$", "").replace("×", "*").replace("÷", "/"))
    try:
        value = _evaluate(ast.parse(text.strip(), mode="eval").body)
    except ZeroDivisionError:
        return "error: division by zero"
    except OverflowError:
        return "error: the result is too large"
    except (SyntaxError, ValueError) as error:
        return f"error: {error.msg if isinstance(error, SyntaxError) else error}"
    return f"{round(value, 6):f}".rstrip("0").rstrip(".")


class AnswerWithTools(dspy.Signature):
    """Answer the question about the parts catalogue with one number. Look up every item the question
    names, use the calculator for any arithmetic, then finish. Tool arguments are a JSON object, e.g.
    {"item": "bracket K-12"} for lookup, {"expression": "7 * 3.50"} for calculator, {} for finish."""

    context: str = context_field()
    question: str = dspy.InputField()
    answer: float = dspy.OutputField()


class ToolAgent(dspy.Module):
    """ReAct over `lookup` and `calculator`; the prediction keeps the trajectory and what each step did."""

    def __init__(self) -> None:
        super().__init__()
        self.agent = dspy.ReAct(AnswerWithTools, tools=[lookup, calculator], max_iters=MAX_STEPS)

    def forward(self, context: str = "", **inputs) -> dspy.Prediction:
        result = self.agent(context=context, **inputs)
        calls = tool_calls(result.trajectory)
        looked_up = [str(args.get("item", "")) for name, args in calls if name == "lookup"]
        return dspy.Prediction(**result.toDict(), looked_up=looked_up, steps=len(calls),
                               finished=any(name == "finish" for name, _ in calls))


def tool_calls(trajectory: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(tool name, arguments) of each turn of a ReAct trajectory, in order."""
    calls = []
    for key in trajectory:
        if key.startswith("tool_name_"):
            args = trajectory.get(key.replace("tool_name_", "tool_args_"))
            calls.append((str(trajectory[key]), args if isinstance(args, dict) else {}))
    return calls


# --- data --------------------------------------------------------------------------------------------------------

class Question(NamedTuple):
    """One kind of question: how hard it is and its templates ({a}, {b} items; {q}, {q1}, {q2} quantities)."""

    difficulty: str
    templates: tuple[str, ...]


QUESTIONS: dict[str, Question] = {
    "price": Question("easy", (
        "What is the unit price of {a}?", "How much does one {a} cost?", "What does a single {a} [cost|sell for]?",
        "Find the price of one {a} in dollars.", "[Price check|Quick question]: what does one {a} cost?")),
    "weight": Question("easy", (
        "How much does one {a} weigh in kg?", "What is the weight of a single {a}, in kilograms?",
        "What does one {a} weigh (kg)?", "How heavy is one {a} in kg?",
        "[Tell me|Give me] the weight in kg of one {a}.")),
    "stock": Question("easy", (
        "How many {a} are in stock?", "What is the stock level of {a}?", "How many units of {a} do we have in stock?",
        "What is the stock count for {a}?", "How many {a} [units|pieces] are [left|on the shelf]?")),
    "cost": Question("medium", (
        "What do {q} units of {a} cost?", "How much do {q} {a} cost in total?", "What is the price of {q} x {a}?",
        "I need {q} of {a}. What is the total cost in dollars?",
        "[What is the|Give the] total cost of an order of {q} {a}?")),
    "load": Question("medium", (
        "What do {q} units of {a} weigh in total, in kg?", "What is the total weight of {q} {a} in kg?",
        "How heavy are {q} {a} together, in kilograms?",
        "A box holds {q} {a}. How many kg is that, not counting the box?",
        "[What is the|Give the] shipping weight in kg of {q} {a}?")),
    "stock_value": Question("medium", (
        "What is the total value of the {a} in stock?", "How much is the stock of {a} worth in dollars?",
        "What are all {a} units in stock worth at unit price?",
        "If we sold every {a} in stock at its unit price, how much would it bring in?",
        "[What is|How much is] our {a} inventory worth in dollars?")),
    "cost_two": Question("hard", (
        "What do {q1} {a} and {q2} {b} cost together?",
        "What is the total cost of {q1} units of {a} plus {q2} units of {b}?",
        "An order has {q1} {a} and {q2} {b}. What does it cost?", "How much do I pay for {q1} {a} and {q2} {b}?",
        "[Price|Quote] {q1} {a} together with {q2} {b}: the total in dollars?")),
    "price_gap": Question("hard", (
        "How much more does one {a} cost than one {b}?", "What is the price difference between one {a} and one {b}?",
        "By how many dollars does the unit price of {a} exceed that of {b}?",
        "One {a} versus one {b}: how much more expensive is the {a}?",
        "[How much|By how much] is {a} pricier than {b}, per unit?")),
    "load_two": Question("hard", (
        "What do {q1} {a} and {q2} {b} weigh together, in kg?",
        "What is the total weight in kg of {q1} {a} plus {q2} {b}?",
        "A crate holds {q1} {a} and {q2} {b}. How many kg of parts is that?",
        "How heavy are {q1} {a} and {q2} {b} combined, in kilograms?",
        "[Give|What is] the shipping weight in kg of {q1} {a} with {q2} {b}?")),
    "stock_gap": Question("hard", (
        "How many more {a} than {b} are in stock?", "By how many units does the stock of {a} exceed that of {b}?",
        "What is the difference between the stock of {a} and of {b}?",
        "We have {a} and {b} in stock. How many more of the {a}?",
        "[How much|By how much] larger is the {a} stock than the {b} stock?")),
}
PARTS = list(CATALOGUE.values())


def _solve(kind: str, a: Part, b: Part, q1: int, q2: int) -> tuple[float, str]:
    """The gold answer and how it follows from the catalogue entries."""
    if kind in ("price", "weight", "stock"):
        value = getattr(a, kind)
        return float(value), f"lookup('{a.name}') gives its {kind} directly: {value:g}."
    if kind == "stock_value":
        value = round(a.stock * a.price, 2)
        return value, (f"lookup('{a.name}') gives stock {a.stock} and price {a.price:g}; "
                       f"{a.stock} x {a.price:g} = {value:g}.")
    if kind in ("cost", "load"):
        field = "price" if kind == "cost" else "weight"
        unit = getattr(a, field)
        value = round(q1 * unit, 2)
        return value, f"lookup('{a.name}') gives {field} {unit:g}; {q1} x {unit:g} = {value:g}."
    field = {"cost_two": "price", "price_gap": "price", "load_two": "weight", "stock_gap": "stock"}[kind]
    x, y = getattr(a, field), getattr(b, field)
    if kind in ("cost_two", "load_two"):
        value = round(q1 * x + q2 * y, 2)
        return value, f"{field}s {x:g} ({a.name}) and {y:g} ({b.name}); {q1} x {x:g} + {q2} x {y:g} = {value:g}."
    value = round(x - y, 2)
    return float(value), f"{field}s {x:g} ({a.name}) and {y:g} ({b.name}); {x:g} - {y:g} = {value:g}."


def plan(kind: str, a: Part, b: Part, q1: int, q2: int) -> list[tuple[str, dict[str, str]]]:
    """The tool calls a right run makes before `finish`: the lookups, then the arithmetic if any."""
    if kind in ("price", "weight", "stock"):
        return [("lookup", {"item": a.name})]
    if kind == "stock_value":
        return [("lookup", {"item": a.name}), ("calculator", {"expression": f"{a.stock} * {a.price:g}"})]
    if kind in ("cost", "load"):
        unit = a.price if kind == "cost" else a.weight
        return [("lookup", {"item": a.name}), ("calculator", {"expression": f"{q1} * {unit:g}"})]
    field = {"cost_two": "price", "price_gap": "price", "load_two": "weight", "stock_gap": "stock"}[kind]
    x, y = getattr(a, field), getattr(b, field)
    expression = f"{q1} * {x:g} + {q2} * {y:g}" if kind in ("cost_two", "load_two") else f"{x:g} - {y:g}"
    return [("lookup", {"item": a.name}), ("lookup", {"item": b.name}), ("calculator", {"expression": expression})]


def teacher(example: dspy.Example) -> dspy.BaseLM:
    """A scripted LM that runs the example's gold plan through the real tools, then answers: the whole
    trace LoRA learns tool calls from (a 135M model makes too few right calls to learn from its own)."""
    turns = [{"next_thought": f"I call {tool} with {args}.", "next_tool_name": tool, "next_tool_args": args}
             for tool, args in example.plan]
    turns.append({"next_thought": "I have what I need.", "next_tool_name": "finish", "next_tool_args": {}})
    turns.append({"reasoning": example.explanation, "answer": example.answer})
    return dspy.utils.DummyLM(turns)


def make_item(rng: random.Random, difficulty: str, split: str) -> dict:
    kind = rng.choice([name for name, question in QUESTIONS.items() if question.difficulty == difficulty])
    templates = QUESTIONS[kind].templates
    template = rng.choice(for_split(templates, split))
    a, b = rng.sample(for_split(PARTS, split), 2)
    if kind in ("price_gap", "stock_gap"):  # the first-named part has the larger value: the answer is positive
        field = "price" if kind == "price_gap" else "stock"
        a, b = sorted((a, b), key=lambda part: getattr(part, field), reverse=True)
    q1, q2 = rng.randint(2, 12), rng.randint(2, 12)
    answer, explanation = _solve(kind, a, b, q1, q2)
    question = sentence_case(render(rng, template, a=a.name, b=b.name, q=q1, q1=q1, q2=q2))
    two = difficulty == "hard"
    return {"question": question, "answer": answer, "lookup_item": [a.name, b.name] if two else [a.name],
            "plan": [[tool, args] for tool, args in plan(kind, a, b, q1, q2)],
            "explanation": explanation, "family": f"{difficulty}/{kind}/t{templates.index(template)}"}


# --- metric ------------------------------------------------------------------------------------------------------

def lookup_metric(gold: Any, pred: Any, trace=None, pred_name=None, pred_trace=None) -> dspy.Prediction:
    """The share of the question's items the agent looked up (names matched as `lookup` matches them)."""
    expected = read_field(gold, "lookup_item")
    expected = [str(name) for name in expected] if isinstance(expected, (list, tuple)) else [str(expected)]
    asked = read_field(pred, "looked_up")
    asked = [str(item) for item in asked] if isinstance(asked, (list, tuple)) else []
    found = {part.name for part in map(find_part, asked) if part}
    missing = [name for name in expected if name not in found]
    score = 1.0 - len(missing) / len(expected)
    if not missing:
        return dspy.Prediction(score=score, feedback=f"Correct: looked up {', '.join(expected)}.")
    shown = ", ".join(repr(item) if item else "(no item)" for item in asked) or "nothing"
    feedback = (f"The agent looked up {shown} but never {', '.join(map(repr, missing))}; "
                f"the question needs lookup of {', '.join(map(repr, expected))}.")
    if "" in asked:  # the call's arguments lacked "item"
        feedback += f' A lookup call takes next_tool_args like {{"item": "{expected[0]}"}}.'
    return dspy.Prediction(score=score, feedback=feedback)


def finish_metric(gold: Any, pred: Any, trace=None, pred_name=None, pred_trace=None) -> dspy.Prediction:
    """1 when the agent called `finish` within the step limit."""
    if read_field(pred, "finished") is True:
        return dspy.Prediction(score=1.0, feedback=f"Correct: finished after {read_field(pred, 'steps')} tool calls.")
    return dspy.Prediction(score=0.0, feedback=f"The agent did not call finish within {MAX_STEPS} tool calls; "
                                               "once the tools have given the figures it needs, it should finish.")


METRIC = step_metric(
    Step("lookup", lookup_metric, ("agent.react",)),
    Step("finish", finish_metric, ("agent.react",)),
    Step("answer", numeric_metric("answer", abs_tol=0.01), ("agent.react", "agent.extract.predict")),
)

DOMAIN = Domain(
    name="tool_agent",
    program=ToolAgent,
    metric=METRIC,
    data=lambda: generate_splits("tool_agent", make_item, inputs=("question",), n=ITEMS),
    task="computation",
    description="Tool agent (ReAct): look up catalogue items and calculate prices, weights and stock (several steps).",
    input_fields=("question",),
    label_fields=("answer", "lookup_item"),
    teacher=teacher,
)
