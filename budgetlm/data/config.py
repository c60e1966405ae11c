"""Configuration of the data a run trains on."""

from __future__ import annotations

from dataclasses import dataclass, field

from budgetlm.data.feed.sampler import MixtureStage

DEFAULT_SOURCES = ("builtin:prose", "builtin:code")


@dataclass
class CleaningConfig:
    """What `prepare` removes or rewrites before tokenizing; each step is reported per rule in
    the manifest (documents and bytes removed)."""

    normalize: str | None = "NFC"
    """Unicode normal form (NFC, NFKC, ...) applied to every document, or None to keep bytes."""
    exact_dedup: bool = True
    """Drop documents whose normalised text equals an earlier one's (across all sources)."""
    near_dedup: bool = False
    """Drop near-duplicates found by MinHash + LSH (costs time and ~1 KB of memory per kept
    document; see data/minhash.py)."""
    quality: str | dict[str, str] | None = None
    """Heuristic quality filter preset: "prose" (Gopher/C4 rules) or "code" (the rules that
    make sense for source code) for every domain, or one per domain ({code: code, web: prose};
    domains not named are kept whole); None keeps every document. See data/filters.py."""

    def quality_for(self, domain: str) -> str | None:
        """The quality preset applied to one domain's documents, or None."""
        if isinstance(self.quality, dict):
            return self.quality.get(domain)
        return self.quality


@dataclass
class DataConfig:
    """Where training text comes from and how it is prepared and mixed."""

    sources: list[str] = field(default_factory=lambda: list(DEFAULT_SOURCES))
    """Source specs (`[domain=]path|glob|builtin:NAME`); ignored when `prepared` is set."""
    prepared: str | None = None
    """A prepared dataset directory (from `budgetlm prepare`) to train on as is."""
    vocab_size: int = 4096
    """BPE vocabulary size when a tokenizer is trained."""
    val_fraction: float = 0.05
    """Share of documents per domain held out for validation."""
    text_field: str = "text"
    """Field holding the text in JSONL sources."""
    cache_dir: str | None = None
    """Where prepared sources are cached (default: $BUDGETLM_CACHE or ~/.cache/budgetlm)."""
    weights: dict[str, float] | None = None
    """Mixture weight per domain; default: each domain's share of training tokens."""
    max_epochs: dict[str, float] | None = None
    """Passes allowed over a domain (e.g. {hq: 4, web: 1}); a domain that reaches its limit
    leaves the mixture and the others share its weight. Default: no limit."""
    schedule: list[MixtureStage] | None = None
    """Weights changing over training (a curriculum): stages of {until: FRACTION, weights: {...}}
    ending at 1.0; overrides `weights`."""
    skills: list[str] | None = None
    """Domains that are skills for a curriculum (e.g. one per `builtin:arith/SKILL` source);
    default: every domain. Other domains keep their share of the mixture."""
    skill_graph: dict[str, dict[str, float]] | str | None = None
    """Which skill helps which: {i: {j: A_ij}} (training on i lowers j's loss by A_ij; unlisted
    entries 0, the diagonal 1), a JSON file of that or of {skills: [...], matrix: [[...]]} (e.g.
    a run's skill_graph.json), or "prerequisites" (builtin:arith's). Default: estimated by short
    probe runs at the start, saved as skill_graph.json in the run directory (data/skills.py)."""
    curriculum: str = "none"
    """"none", or "skillit": online Skill-it ("Skill-it! A Data-Driven Skills Framework for
    Understanding and Training Language Models", Chen et al., 2023) adapts the skills' weights
    to their validation losses through the graph: w_i <- w_i exp(eta sum_j A_ij L_j)."""
    curriculum_eta: float = 0.1
    """Step size of the Skill-it update (0 keeps the weights)."""
    curriculum_every: int = 50
    """Optimizer steps between weight updates (there is one more before the first step)."""
    curriculum_targets: list[str] | None = None
    """Skills whose validation loss the curriculum lowers (Skill-it's evaluation skills, e.g. the
    hardest one); default: every skill."""
    curriculum_tokens: int = 4096
    """Validation tokens per target skill scored for each update (and per skill by the probes)."""
    skill_probe_steps: int = 10
    """Optimizer steps on each skill alone when the graph is estimated; they are paid from the
    budget, so the run itself gets that much less."""
    seed: int = 0
    """Seed of the train/validation split."""
    clean: CleaningConfig = field(default_factory=CleaningConfig)
    """Normalisation, deduplication and quality filtering applied when preparing."""
