"""Configuration of the optimisation: optimizer, schedule, batch, precision, checkpoints."""

from __future__ import annotations

from dataclasses import dataclass

from budgetlm.errors import UserError

PRECISIONS = ("auto", "bf16", "fp32")


@dataclass
class TrainConfig:
    """How the model is optimised; the budget decides how long."""

    lr: float = 3e-3
    """Peak learning rate (of every parameter; Muon's matrices take it times muon_lr_scale)."""
    optimizer: str = "adamw"
    """'adamw', 'muon' (Muon for the hidden weight matrices, AdamW for embeddings, output head,
    norm gains and biases: train/muon.py), or 'auto': Muon for a native model trained from
    scratch (it won at equal wall-clock at the nano and ~25M sizes, BENCHMARKS.md), AdamW for
    a continued, transformers, LoRA or FSDP-sharded model (train/optim.choose_optimizer). Not
    yet the default: DDP's match with one process, and `scale` reusing runs saved with the
    optimizer it chose, do not yet hold for it (BENCHMARKS.md)."""
    muon_lr_scale: float = 1.0
    """Muon's peak LR as a multiple of `lr`. Muon's update is scaled to AdamW's typical update
    RMS (0.2, "Muon is Scalable for LLM Training", Liu et al., 2025), so AdamW's LR and weight
    decay carry over and 1.0 is that paper's setting."""
    embedding_lr_scale: float = 1.0
    """The token embedding's and output head's peak LR as a multiple of `lr`, under AdamW (e.g.
    with LoRA and model.lora_train_embeddings, the embeddings learn at their own rate)."""
    min_lr_ratio: float = 0.0
    """Final learning rate as a share of the peak (0: decay to zero, fully annealed)."""
    schedule: str = "wsd"
    """'wsd' (warmup-stable-decay), 'cosine', 'linear' (to zero), 'rewarm' (continual
    pre-training: re-warm from min_lr_ratio, then re-decay) or 'constant' (never decays)."""
    decay_shape: str | None = None
    """Shape of the decay of 'wsd' and 'rewarm': 'linear', 'cosine' or '1-sqrt' (Hägele et al.,
    2024). Default: linear for 'wsd', cosine for 'rewarm'; the other schedules fix their own."""
    warmup_fraction: float = 0.05
    """Share of the planned steps spent warming up linearly."""
    context_warmup: float = 0.0
    """Share of the planned steps over which the context grows from seq_len/8 to seq_len, in
    quarters, with the tokens of a step unchanged (train/ramps.py); 0 turns it off."""
    batch_warmup: float = 0.0
    """Share of the planned steps over which each step's batch is spent on 4, then 2, then 1
    optimizer updates (train/ramps.py); 0 turns it off."""
    decay_fraction: float = 0.2
    """Share of the planned steps spent decaying (WSD only; the others decay after warmup)."""
    z_loss: float = 0.0
    """Weight of the z-loss, mean(logsumexp(logits)^2), which keeps the softmax normaliser near
    1 (Chowdhery et al., 2022, "PaLM", use 1e-4); 0 turns it off."""
    weight_decay: float = 0.1
    """Decoupled weight decay of matrices (AdamW's and Muon's); none on gains and biases."""
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    """Clip the global gradient norm to this (0 disables)."""
    batch_size: int = 16
    """Sequences per optimizer step (global). 16 x 256 tokens beat 32 x 256 for the default
    5-minute nano run (BENCHMARKS.md)."""
    micro_batch_size: int = 16
    """Sequences per forward/backward pass; batch_size / micro_batch_size steps are accumulated."""
    precision: str = "auto"
    """'bf16' (autocast, fp32 master weights), 'fp32', or 'auto': bf16 on a GPU that supports
    it; on a CPU the faster of the two for this model, measured (machine/precision.py)."""
    device: str = "auto"
    """'auto' (cuda if available, else cpu), 'cpu' or 'cuda'."""
    activation_checkpointing: bool | None = None
    """Recompute each block's activations in backward instead of keeping them (train/
    recompute.py). None (auto): on only when even one sequence per micro-batch would not fit
    in the device's free memory without it (accumulating smaller micro-batches costs less
    than recomputing); the choice is logged and saved in the run's config."""
    compile: bool | None = None
    """Wrap the model in torch.compile. None (auto): on for a time budget where the speed-up
    pays for the compilation, judged from the compile time and speed-up measured by earlier runs
    on this machine (machine/compile.py), off for other budgets. A compilation that fails falls
    back to eager."""
    reuse_host_memory: bool = True
    """On the CPU, keep freed buffers in the process for the next step instead of returning them
    to the OS (glibc malloc thresholds, train/host_memory.py); measured in BENCHMARKS.md."""
    parallel: str = "ddp"
    """With several processes (torchrun): 'ddp' keeps a full copy of the model and optimizer on
    every process; 'fsdp' shards parameters, gradients and AdamW state across them (FSDP2
    fully_shard, train/sharding.py) for models whose training state does not fit one device."""
    seed: int = 0
    log_every: int = 10
    """Optimizer steps between logged training records."""
    sample_weighting: str = "none"
    """Online loss-based reweighting of the sequences in each micro-batch (Sow et al., 2025;
    train/reweight.py): 'none', 'linupper', 'quadratic' or 'extremes'."""
    sample_weighting_delta: float = 1.0
    """Half-width of the range [-delta, delta] the micro-batch's losses are normalized to."""
    sample_weighting_temperature: float = 1.0
    """Softmax temperature of the weights (lower: sharper weighting)."""

    def __post_init__(self) -> None:
        from budgetlm.train.ramps import check_warmup

        check_warmup("train.context_warmup", self.context_warmup)
        check_warmup("train.batch_warmup", self.batch_warmup)
        if isinstance(self.z_loss, bool) or not isinstance(self.z_loss, int | float):
            raise UserError(f"train.z_loss must be a number >= 0, got {self.z_loss!r}")
        if not self.z_loss >= 0:
            raise UserError(f"train.z_loss must be >= 0 (0 turns it off), got {self.z_loss}")
        if (self.sample_weighting, self.sample_weighting_delta) != ("none", 1.0) or (
            self.sample_weighting_temperature != 1.0
        ):  # the check imports torch: only when reweighting is configured
            from budgetlm.train.reweight import check_weighting

            check_weighting(
                self.sample_weighting,
                self.sample_weighting_delta,
                self.sample_weighting_temperature,
            )


@dataclass
class CheckpointConfig:
    """When checkpoints are written and which are kept."""

    every: float = 0.25
    """Write a checkpoint each time this share of the budget has been used (0 disables)."""
    keep_last: int = 2
    """Periodic checkpoints to keep (the pre-decay and final ones are always kept)."""
    keep_every: int = 0
    """Also keep every m-th periodic checkpoint for good (tagged "kept"); 0 keeps none."""
    pre_decay: bool = True
    """Keep the last checkpoint before the learning-rate decay (to continue training later)."""
