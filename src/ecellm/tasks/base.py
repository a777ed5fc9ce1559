"""What a task is: its identity, answer format, instructions, decoding and parser.

One module per task under ``ecellm.tasks`` builds a :class:`Task`; the registry lists them.
Adding an 11th task is one new module and one line in ``ecellm.tasks.registry.TASK_MODULES``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from ecellm.tasks.constraints import Constraint


class SampleFields(Protocol):
    """What a task reads of a sample (:class:`ecellm.tasks.sample.Sample` has it all). A protocol,
    so that this module does not import the sample schema, which resolves task names here."""

    id: str
    task: str
    instruction: str
    input: str
    options: list[str]
    output: str
    meta: dict[str, Any]


AnswerKind = Literal[
    "attribute_values",
    "letter",
    "option",
    "yes_no",
    "ranking",
    "text",
    "option_number",
    "item_order",
    "item_numbers",
    "entities",
]
DecodeMode = Literal["generate", "choice", "constrained"]
CLOSED_KINDS = ("yes_no", "option", "letter")  # answer kinds with a fixed set of answer strings
# answer kinds too varied for a run's most common answer to say anything (see Task.countable)
OPEN_KINDS = ("attribute_values", "text", "entities")
Category = Literal[
    "product understanding",
    "user understanding",
    "query understanding",
    "product question answering",
    "online shopping",
]


@dataclass(frozen=True)
class Invalid:
    """A model output that could not be read as an answer; ``reason`` says why."""

    reason: str

    def __bool__(self) -> bool:  # an Invalid is never a usable answer
        return False


@dataclass(frozen=True)
class InputField:
    """One plain input a caller gives a task (``ecellm.infer.task_api``, ``POST /v1/tasks/...``).

    ``type`` is the Python annotation the field is validated against (``str``, ``list[str]``,
    ``dict[str, str]``...); ``key`` is the name the field has in the sample's JSON input, when
    the task's input is a JSON object (default: ``name``); ``min_items``/``max_items`` bound a
    list; ``example`` is a realistic value (documentation, the try-it page's prefill).
    """

    name: str
    type: Any
    description: str
    example: Any
    key: str | None = None
    min_items: int | None = None
    max_items: int | None = None


# How a task's answers are scored when it declares nothing else: the scorer family of its answer
# kind (:mod:`ecellm.evaluate.paper` and :mod:`ecellm.evaluate.strict` implement each family),
# and the metric a family reports as its primary one.
SCORING_BY_ANSWER = {
    "yes_no": "binary",
    "letter": "multiclass",
    "option": "multiclass",
    "ranking": "ranking",
    "attribute_values": "attribute_values",
    "text": "generation",
}
PRIMARY_BY_SCORING = {
    "binary": "f1",
    "hit_rate": "hr@1",
    "ranking": "ndcg",
    "attribute_values": "f1",
    "generation": "bertscore_f1",
    "multiclass": "macro_f1",
}


@dataclass(frozen=True)
class AnswerForm:
    """How a task's answer is written under one prompt template when the plain gold output does
    not fit it (Flan-T5 has no braces in its vocabulary): ``encode`` turns a gold output into the
    training target, ``decode`` turns generated text back into the plain answer."""

    encode: Callable[[str], str]
    decode: Callable[[str], str]


@dataclass(frozen=True)
class Task:
    """A task definition. Parsers are plain functions so each task module stays declarative.

    - ``options``: the fixed option strings shown to the model (empty when the task has none
      or when options vary per sample, as in SR).
    - ``instructions``: the diverse pool; ``instructions[0]`` is the seed (used by *Single*).
    - ``unseen_instruction``: held out of training; used by the *Unseen* settings.
    - ``decode``: the default decoding mode for closed or structured answers.
    - ``family``: the benchmark the task belongs to (``ecinstruct``, ``shopbench``).
    - ``request_builder``, ``scorer``, ``aggregate``: hooks a task family sets when the generic
      request builder and evaluator do not fit it (ShopBench: whole-prompt questions scored per
      record by the record's own metric). ``request_builder(task, sample, mode=, template=,
      tokenizer=)`` returns a backend request; ``scorer(task, setting, samples, texts, mode=,
      lenient=, bertscore_model=)`` returns ``{"score", "metric", "metrics", "invalid"[, "row"]}``;
      ``aggregate(rows)`` summarises the family's result rows (tracks, overall).
    - ``modes``: the evaluation modes the task knows; ``paper`` and ``official`` both mean "as
      the reference evaluator scores it".
    - ``constraint``: the sample's decoding constraint spec (:mod:`ecellm.tasks.constraints`),
      or ``None`` when the sample lacks what it needs; no ``constraint``: free text.
    - ``inputs``: the plain fields a caller gives (no instruction, no gold output);
      ``compose(fields)`` turns them into the sample's ``input`` (and ``options``, ``meta`` or
      ``instruction`` where the task needs them). Without ``compose`` the input is the JSON
      object ``{field.key: value}`` and the options are the task's own
      (:func:`ecellm.tasks.sample.sample_from`).
    - ``scoring``: the scorer family (:data:`SCORING_BY_ANSWER` keys' values plus ``hit_rate``);
      default: the answer kind's. ``primary``: the metric reported as the task's score; default:
      the family's (:data:`PRIMARY_BY_SCORING`). ``gains``: relevance gain per gold label, for
      ``ranking`` scoring (NDCG over ``meta["labels"]``).
    - ``label_file``: the file name under which a distribution keeps the test split's gold
      labels apart from the samples (the reference's QPR ``label.json``); loaders attach them as
      ``meta["labels"]``.
    - ``check(sample)``: a task-specific consistency check of a gold sample, ``(field,
      message)`` or ``None`` (``ecellm data validate``).
    - ``answer_forms``: ``{template: AnswerForm}`` for templates that write the answer
      differently (training target and decoding).
    - ``quality``: this task's settings of the build's quality steps
      (``{step: {key: value}}``, see :mod:`ecellm.data.quality`); a build config's ``per_task``
      entry still wins.
    - ``builder``: the module that builds the task from raw data (``build(raw_dir, config,
      seed)``, see :mod:`ecellm.data.builders.base`); ``None``: the task is read, not built.
    """

    abbr: str
    name: str
    aliases: tuple[str, ...]
    category: Category
    metric: str
    answer_kind: AnswerKind
    instructions: tuple[str, ...]
    unseen_instruction: str
    decode: DecodeMode
    max_new_tokens: int
    has_ood: bool
    options: tuple[str, ...] = ()
    option_letters: tuple[str, ...] = ()
    parser: Any = None  # Callable[[str, SampleFields | None, bool], Any | Invalid]
    constraint: Callable[[SampleFields], Constraint | None] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    family: str = "ecinstruct"
    request_builder: Any = None
    scorer: Any = None
    aggregate: Any = None
    modes: tuple[str, ...] = ("paper", "strict")
    inputs: tuple[InputField, ...] = ()
    compose: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    scoring: str | None = None
    primary: str | None = None
    gains: dict[str, float] | None = None
    label_file: str | None = None
    check: Callable[[SampleFields], tuple[str, str] | None] | None = None
    answer_forms: dict[str, AnswerForm] = field(default_factory=dict)
    quality: dict[str, dict[str, Any]] = field(default_factory=dict)
    builder: str | None = None

    @property
    def score_kind(self) -> str:
        """The scorer family that scores this task (see :attr:`scoring`); ``own`` for a task
        with its own :attr:`scorer`."""
        if self.scorer is not None:
            return "own"
        if self.scoring is None and self.answer_kind not in SCORING_BY_ANSWER:
            raise ValueError(f"task {self.abbr}: answer kind {self.answer_kind!r} needs scoring or a scorer")
        return self.scoring or SCORING_BY_ANSWER[self.answer_kind]

    @property
    def primary_metric(self) -> str:
        """The metric reported as the task's score (the paper's column); ``score`` for a task
        with its own scorer (which names its metric per row)."""
        if self.primary:
            return self.primary
        return "score" if self.scorer is not None else PRIMARY_BY_SCORING[self.score_kind]

    def parse(self, text: str | None, sample: SampleFields | None = None, *, lenient: bool = False) -> Any:
        """Read raw model text as a structured answer, or return :class:`Invalid`. Never raises."""
        if self.parser is None:
            raise NotImplementedError(f"task {self.abbr} has no parser")
        try:
            return self.parser(text if isinstance(text, str) else "", sample, lenient)
        except Exception as exc:  # a parser bug must not crash an evaluation run
            return Invalid(f"parser error: {type(exc).__name__}: {exc}")

    def choices(self, sample: SampleFields) -> list[str]:
        """Every allowed answer string for choice scoring (exactly as a gold output is written)."""
        if self.answer_kind == "yes_no":
            return ["yes", "no"]
        if self.answer_kind == "option":
            return list(sample.options or self.options)
        if self.answer_kind == "letter":
            opts = sample.options or list(self.options)
            return [o.split(":", 1)[0].strip() for o in opts]
        raise ValueError(f"task {self.abbr} has no closed answer set")

    @property
    def closed(self) -> bool:
        """Whether every answer is one of a fixed set of strings (scored by :meth:`choices`)."""
        return self.answer_kind in CLOSED_KINDS

    @property
    def countable(self) -> bool:
        """Whether a run's most common answer means something (:mod:`ecellm.evaluate.answers`):
        choices, rankings and item lists, not free text, extractions or entity lists."""
        return self.answer_kind not in OPEN_KINDS

    def decoding(self, sample: SampleFields, mode: str = "auto") -> SampleDecoding:
        """How to decode ``sample`` when ``mode`` is asked for (``auto`` = :attr:`decode`).

        ``choice`` and ``constrained`` apply where the task supports them: a closed-set task asked
        for ``constrained`` is scored as ``choice`` (the tightest constraint there is) unless it
        declares a ``constraint`` of its own, any other task asked for ``choice`` keeps its
        default. When the sample lacks what its constraint or
        choices need, the answer is generated freely and the mode says so.
        """
        wanted = self.decode if mode == "auto" else mode
        if wanted == "constrained" and self.closed and self.constraint is None:
            wanted = "choice"
        elif wanted == "choice" and not self.closed:
            wanted = self.decode
        if wanted == "choice" and self.closed and (choices := self.choices(sample)):
            score = [c.split(":", 1)[0].strip() for c in choices] if self.answer_kind == "option" else None
            return SampleDecoding("choice", self.max_new_tokens, choices=choices, score_texts=score)
        if wanted == "constrained" and self.constraint is not None:
            spec = self.constraint(sample)
            if spec is not None:
                return SampleDecoding("constrained", spec.budget(self.max_new_tokens), constraint=spec)
        return SampleDecoding("generate", self.max_new_tokens)


@dataclass(frozen=True)
class SampleDecoding:
    """A sample's decoding: the mode, the new-token budget, and the choices to score (``choice``;
    ``score_texts`` are what is scored of each, e.g. the letter of ``"B: positive"``) or the
    constraint spec (``constrained``)."""

    mode: DecodeMode
    max_new_tokens: int
    choices: list[str] | None = None
    score_texts: list[str] | None = None
    constraint: Constraint | None = None
