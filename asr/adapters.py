"""Parameter-composition adapters for openai-whisper: S2-LoRA and its baselines (LoRA, AdaLoRA, BitFit, full).

Every method here adds no inference cost once merged (the S2-LoRA paper's premise). One interface serves all:

    adapter = Adapter(model, AdapterConfig(method="s2lora", rank=8))   # modifies ``model`` in place
    loss = asr_loss(model, mel, texts) + adapter.regularizer()
    loss.backward(); opt.step(); adapter.after_step(step, lr)           # proximal step / AdaLoRA budget
    adapter.save("adapter.safetensors")                                 # small file: trained tensors + config
    merged = adapter.merge()                                            # a plain Whisper again

S2-LoRA (Liu et al., ICASSP 2024), as reconstructed here from the paper's abstract — the method section was not
available, so the shapes and the sparsity schedule below are our choices:

* ``dW_m = s * B diag(lambda_m) A`` for every adapted ``Linear`` m, ``s = alpha / r``. ``A`` (r x d_in) and
  ``B`` (d_out x r) are shared: by default one globally shared pair of the largest shapes, sliced to each matrix
  (``sharing="global"``, what "the two low-rank decomposed matrices are globally shared" reads as), or one pair per
  (d_in, d_out) shape group (``sharing="shape"``: attention d->d, MLP d->4d and 4d->d), as an ablation.
* ``lambda_m`` (r) is the matrix's own rank-coefficient vector, made sparse by a proximal soft-threshold after each
  optimiser step (``sparsity="proximal"``, threshold ``lr * sparsity_weight``, as SoRA does) or by an L1 penalty
  added to the loss (``sparsity="l1"``). Its number of non-zeros is the matrix's learned rank.
* Init: ``lambda = 0`` (so ``dW = 0`` and the model's output is unchanged at step 0), ``A`` Kaiming-uniform and
  ``B`` Gaussian, both non-zero so the first gradients reach ``lambda`` (B = 0 with lambda = 0 would never move).
* The adapted layer replaces the ``Linear`` module itself, so Whisper's kv-cache hooks (registered on ``key`` and
  ``value`` modules) and ``whisper.decode`` keep working. ``A`` and ``B`` are registered once, on the model root
  (``model.s2lora``); layers hold a plain reference.

LoRA and AdaLoRA are peft's (which dispatches on openai-whisper's ``Linear`` subclasses). openai-whisper returns
plain logits, so AdaLoRA's orthogonal regulariser is added here by hand and ``update_and_allocate`` runs after each
optimiser step. BitFit trains every bias (``key`` has none) and optionally the LayerNorm biases.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from whisper.model import Linear as WhisperLinear
from whisper.model import ModelDimensions, Whisper

METHODS = ("s2lora", "lora", "adalora", "bitfit", "full")
# module paths inside a residual block; ``cross_attn.*`` exists in the decoder only
TARGETS = (
    "attn.query",
    "attn.key",
    "attn.value",
    "attn.out",
    "cross_attn.query",
    "cross_attn.key",
    "cross_attn.value",
    "cross_attn.out",
    "mlp.0",
    "mlp.2",
)
MODEL_TYPE = "audiotok-whisper-adapter"


@dataclass
class AdapterConfig:
    method: str = "s2lora"  # s2lora | lora | adalora | bitfit | full
    targets: list[str] = field(default_factory=lambda: list(TARGETS))
    parts: list[str] = field(default_factory=lambda: ["encoder", "decoder"])
    rank: int = 8  # S2-LoRA and LoRA rank
    alpha: float = 8.0  # scale s = alpha / rank (AdaLoRA: peft's lora_alpha)
    seed: int = 0
    # S2-LoRA
    sharing: str = "global"  # "global": one sliced A/B pair | "shape": one pair per (d_in, d_out)
    sparsity: str = "proximal"  # "proximal" soft-threshold after each step | "l1" penalty in the loss
    sparsity_weight: float = 1e-3
    # AdaLoRA (peft's names; total_step is set by the training loop when left at 0)
    init_r: int = 12
    target_r: int = 8
    tinit: int = 0
    tfinal: int = 0
    delta_t: int = 10
    orth_reg_weight: float = 0.5
    total_step: int = 0
    # BitFit
    bitfit_layernorm: bool = True

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown adapter method {self.method!r}; known: {', '.join(METHODS)}")
        unknown = sorted(set(self.targets) - set(TARGETS))
        if unknown:
            raise ValueError(f"unknown adapter targets {unknown}; known: {', '.join(TARGETS)}")
        if self.sharing not in ("global", "shape"):
            raise ValueError(f"sharing must be 'global' or 'shape', got {self.sharing!r}")
        if self.sparsity not in ("proximal", "l1"):
            raise ValueError(f"sparsity must be 'proximal' or 'l1', got {self.sparsity!r}")


def target_names(model: Whisper, cfg: AdapterConfig) -> list[str]:
    """Names of the ``Linear`` modules ``cfg`` adapts, in model order."""
    pattern = re.compile(rf"({'|'.join(cfg.parts)})\.blocks\.\d+\.({'|'.join(map(re.escape, cfg.targets))})")
    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and pattern.fullmatch(n)]


# ----------------------------------------------------------------------------------------------- S2-LoRA layers


class S2LoRAShared(nn.Module):
    """The shared low-rank factors: ``A[g]`` (r, d_in) and ``B[g]`` (d_out, r) per sharing group ``g``."""

    def __init__(self, shapes: list[tuple[int, int]], rank: int, sharing: str, generator: torch.Generator):
        super().__init__()
        self.sharing = sharing
        if sharing == "global":
            groups = {"global": (max(i for i, _ in shapes), max(o for _, o in shapes))}
        else:
            groups = {self.key(i, o): (i, o) for i, o in sorted(set(shapes))}
        self.A, self.B = nn.ParameterDict(), nn.ParameterDict()
        for g, (d_in, d_out) in groups.items():
            bound = 1.0 / math.sqrt(d_in)  # nn.Linear's default (Kaiming-uniform, a = sqrt(5))
            self.A[g] = nn.Parameter((torch.rand(rank, d_in, generator=generator) * 2 - 1) * bound)
            self.B[g] = nn.Parameter(torch.randn(d_out, rank, generator=generator) / math.sqrt(rank))

    def key(self, d_in: int, d_out: int) -> str:
        return "global" if self.sharing == "global" else f"{d_in}x{d_out}"

    def factors(self, d_in: int, d_out: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(A (r, d_in), B (d_out, r)) for a matrix of that shape (slices of the global pair)."""
        g = self.key(d_in, d_out)
        return self.A[g][:, :d_in], self.B[g][:d_out]


class S2LoRALinear(WhisperLinear):
    """A frozen ``Linear`` plus ``s * B diag(lam) A`` with shared ``A``, ``B``. (…, d_in) -> (…, d_out)."""

    def __init__(self, base: nn.Linear, shared: S2LoRAShared, rank: int, scale: float):
        nn.Module.__init__(self)
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight, self.bias = base.weight, base.bias
        self.lam = nn.Parameter(torch.zeros(rank, device=base.weight.device))
        self.scale = scale
        object.__setattr__(self, "shared", shared)  # a reference, not a submodule: registered once on the root

    def delta_weight(self) -> torch.Tensor:
        A, B = self.shared.factors(self.in_features, self.out_features)
        return self.scale * (B * self.lam) @ A

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        A, B = self.shared.factors(self.in_features, self.out_features)
        y = super().forward(x)
        return y + self.scale * F.linear(F.linear(x, A.to(x.dtype)) * self.lam.to(x.dtype), B.to(x.dtype))


def _is_adapter_tensor(name: str) -> bool:
    return name.startswith("s2lora.") or name.endswith(".lam") or ".lora_" in name or ".ranknum." in name


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent), child, new)


def _plain_linear(weight: torch.Tensor, bias: torch.Tensor | None) -> WhisperLinear:
    out = WhisperLinear(weight.shape[1], weight.shape[0], bias=bias is not None, device=weight.device)
    out.weight = nn.Parameter(weight.detach().clone(), requires_grad=False)
    if bias is not None:
        out.bias = nn.Parameter(bias.detach().clone(), requires_grad=False)
    return out


# ------------------------------------------------------------------------------------------------------ adapter


class Adapter:
    """One adaptation method applied in place to a Whisper ``model`` (see the module docstring)."""

    def __init__(self, model: Whisper, cfg: AdapterConfig):
        self.model, self.cfg = model, cfg
        self.targets = target_names(model, cfg)
        if cfg.method in ("s2lora", "lora", "adalora") and not self.targets:
            raise ValueError(f"no Linear module matches targets {cfg.targets} in parts {cfg.parts}")
        for p in model.parameters():
            p.requires_grad_(cfg.method == "full")
        self.peft = None
        if cfg.method == "s2lora":
            self._add_s2lora()
        elif cfg.method in ("lora", "adalora"):
            self._add_peft()
        elif cfg.method == "bitfit":
            for name, p in model.named_parameters():
                is_ln = isinstance(model.get_submodule(name.rpartition(".")[0]), nn.LayerNorm)
                if name.endswith(".bias") and (cfg.bitfit_layernorm or not is_ln):
                    p.requires_grad_(True)

    # -- construction
    def _add_s2lora(self) -> None:
        cfg, model = self.cfg, self.model
        layers = {n: model.get_submodule(n) for n in self.targets}
        shapes = [(m.in_features, m.out_features) for m in layers.values()]
        gen = torch.Generator().manual_seed(cfg.seed)
        device = next(model.parameters()).device
        model.s2lora = S2LoRAShared(shapes, cfg.rank, cfg.sharing, gen).to(device)
        for name, base in layers.items():
            _replace(model, name, S2LoRALinear(base, model.s2lora, cfg.rank, cfg.alpha / cfg.rank))

    def _add_peft(self) -> None:
        from peft import AdaLoraConfig, LoraConfig, get_peft_model

        cfg = self.cfg
        regex = "|".join(re.escape(n) for n in self.targets)
        if cfg.method == "lora":
            pcfg = LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, target_modules=regex, lora_dropout=0.0)
        else:
            if cfg.total_step <= 0:
                raise ValueError("AdaLoRA needs total_step (the number of training steps)")
            pcfg = AdaLoraConfig(
                init_r=cfg.init_r,
                target_r=cfg.target_r,
                tinit=cfg.tinit,
                tfinal=cfg.tfinal,
                deltaT=cfg.delta_t,
                orth_reg_weight=cfg.orth_reg_weight,
                total_step=cfg.total_step,
                lora_alpha=cfg.alpha,
                target_modules=regex,
                lora_dropout=0.0,
            )
        torch.manual_seed(cfg.seed)  # peft initialises with the global generator
        self.peft = get_peft_model(self.model, pcfg)  # injects in place: self.model stays the Whisper to call

    # -- training
    def trainable(self) -> dict[str, nn.Parameter]:
        return {n: p for n, p in self.model.named_parameters() if p.requires_grad}

    def num_trainable(self) -> int:
        return sum(p.numel() for p in self.trainable().values())

    def num_base(self) -> int:
        """Parameters of the base model (adapter tensors excluded)."""
        return sum(p.numel() for n, p in self.model.named_parameters() if not _is_adapter_tensor(n))

    def param_groups(self, weight_decay: float) -> list[dict]:
        """Optimiser groups: no weight decay on the rank coefficients (their L1/proximal step is the prior),
        biases and norms."""
        decay, no_decay = [], []
        for n, p in self.trainable().items():
            (no_decay if n.endswith((".lam", ".bias", "lora_E")) or p.ndim < 2 else decay).append(p)
        return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]

    def regularizer(self) -> torch.Tensor:
        """Added to the loss: S2-LoRA's L1 (``sparsity="l1"``) or AdaLoRA's orthogonality penalty."""
        cfg = self.cfg
        device = next(self.model.parameters()).device
        if cfg.method == "s2lora" and cfg.sparsity == "l1":
            return cfg.sparsity_weight * sum(m.lam.abs().sum() for m in self.s2lora_layers().values())
        if cfg.method == "adalora" and cfg.orth_reg_weight > 0:
            terms = []
            for n, p in self.model.named_parameters():
                if ("lora_A" in n or "lora_B" in n) and p.requires_grad and p.numel():
                    cov = p @ p.T if "lora_A" in n else p.T @ p
                    terms.append(torch.linalg.matrix_norm(cov - torch.eye(cov.shape[0], device=p.device)))
            return cfg.orth_reg_weight * torch.stack(terms).mean()
        return torch.zeros((), device=device)

    @torch.no_grad()
    def after_step(self, step: int, lr: float) -> None:
        """Call after ``optimizer.step()`` and before ``zero_grad()``: S2-LoRA's proximal soft-threshold of every
        ``lambda`` by ``lr * sparsity_weight``; AdaLoRA's importance update and budget masking."""
        cfg = self.cfg
        if cfg.method == "s2lora" and cfg.sparsity == "proximal":
            t = lr * cfg.sparsity_weight
            for m in self.s2lora_layers().values():
                m.lam.copy_(torch.sign(m.lam) * (m.lam.abs() - t).clamp_min(0))
        elif cfg.method == "adalora":
            self.peft.base_model.update_and_allocate(step)

    # -- inspection
    def s2lora_layers(self) -> dict[str, S2LoRALinear]:
        return {n: m for n, m in self.model.named_modules() if isinstance(m, S2LoRALinear)}

    def ranks(self) -> dict[str, int]:
        """The rank each adapted matrix uses: non-zero ``lambda`` entries (S2-LoRA), non-zero ``lora_E`` entries
        (AdaLoRA), ``r`` (LoRA); empty for BitFit and full fine-tuning."""
        cfg = self.cfg
        if cfg.method == "s2lora":
            return {n: int((m.lam != 0).sum()) for n, m in self.s2lora_layers().items()}
        if cfg.method in ("lora", "adalora"):
            out = {}
            for n in self.targets:
                m = self.model.get_submodule(n)
                if cfg.method == "lora":
                    out[n] = int(m.lora_A["default"].weight.shape[0])
                else:
                    out[n] = int((m.lora_E["default"] != 0).sum())
            return out
        return {}

    # -- persistence
    def state_dict(self) -> dict[str, torch.Tensor]:
        """The trained tensors (all of them for full fine-tuning), by their names in the model."""
        return {n: p.detach().contiguous().cpu() for n, p in self.trainable().items()}

    def save(self, path: str | os.PathLike, extra: dict | None = None) -> Path:
        """A small safetensors file: the trained tensors, the adapter config and the base model's dims."""
        from safetensors.torch import save_file

        from audiotok.checkpoint import FORMAT_VERSION
        from audiotok.config import to_dict
        from audiotok.utils import atomic_path

        meta = {
            "format_version": FORMAT_VERSION,
            "model_type": MODEL_TYPE,
            "config": json.dumps(to_dict(self.cfg)),
            "dims": json.dumps(asdict(self.model.dims)),
        }
        meta.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in (extra or {}).items()})
        path = Path(path)
        with atomic_path(path) as tmp:
            save_file(self.state_dict(), str(tmp), metadata=meta)
        return path

    @classmethod
    def load(cls, model: Whisper, path: str | os.PathLike) -> Adapter:
        """Apply a saved adapter to ``model`` (the base it was trained on) in place."""
        from audiotok.checkpoint import CheckpointError, load_state, read_metadata
        from audiotok.config import from_dict

        meta = read_metadata(path)
        if meta.get("model_type") != MODEL_TYPE:
            raise CheckpointError(f"{path}: not a Whisper adapter (model_type {meta.get('model_type')!r})")
        try:
            dims = ModelDimensions(**json.loads(meta["dims"]))
            config = from_dict(AdapterConfig, json.loads(meta["config"]))
        except (KeyError, TypeError, ValueError) as err:  # ConfigError and JSONDecodeError are ValueErrors
            raise CheckpointError(f"{path}: no valid adapter header ({err})") from None
        if dims != model.dims:
            raise CheckpointError(f"{path}: trained on a base with dims {dims}, not {model.dims}")
        adapter = cls(model, config)
        state = load_state(path, meta)
        params = dict(model.named_parameters())
        unknown = sorted(set(state) - set(params))
        if unknown:
            raise CheckpointError(f"{path}: tensors {unknown[:3]}... do not fit the adapted model")
        wrong = sorted(n for n, v in state.items() if v.shape != params[n].shape)
        if wrong:
            raise CheckpointError(f"{path}: tensors {wrong[:3]} have other shapes than the adapted model's")
        with torch.no_grad():
            for n, v in state.items():
                params[n].copy_(v)
        return adapter

    # -- merging
    @torch.no_grad()
    def merge(self) -> Whisper:
        """Fold the adapter into the weights (no inference cost) and return the plain Whisper; all parameters are
        left frozen. The adapter object is spent afterwards."""
        model = self.model
        if self.cfg.method == "s2lora":
            for name, m in self.s2lora_layers().items():
                weight = (m.weight.float() + m.delta_weight().float()).to(m.weight.dtype)
                _replace(model, name, _plain_linear(weight, m.bias))
            del model.s2lora
        elif self.peft is not None:
            model = self.peft.merge_and_unload()
        for p in model.parameters():
            p.requires_grad_(False)
        return model


def load_adapted(
    model_path: str | os.PathLike, adapter: str | os.PathLike | None = None, merge: bool = True, device="cpu"
) -> Whisper:
    """A Whisper from ``model_path`` (openai ``.pt`` or our safetensors), with ``adapter`` applied (and merged)."""
    from audiotok.whisper import load_whisper

    model = load_whisper(model_path, device="cpu")
    if adapter is not None:
        a = Adapter.load(model, adapter)
        model = a.merge() if merge else a.model
    return model.to(device).eval()
