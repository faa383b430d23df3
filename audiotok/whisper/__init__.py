"""openai-whisper helpers shared by the semantic tokenizer, ASR adaptation and evaluation — the one home of the
suite's Whisper code:

* :mod:`~audiotok.whisper.model` — small configs, initialisation, the log-mel front end, checkpoints;
* :mod:`~audiotok.whisper.text` — tokenizer, the one scoring normaliser, WER/CER, text units, targets;
* :mod:`~audiotok.whisper.loss` — the teacher-forced ASR loss and the character CTC aid;
* :mod:`~audiotok.whisper.decode` — batched decoding of mel, waveforms and manifests;
* :mod:`~audiotok.whisper.ct2` — CTranslate2 ``model.bin`` -> openai-whisper weights (our own reader);
* :mod:`~audiotok.whisper.pretrained` — real Whisper weights by name (``tiny.en``, ``base``), offline included;
* :mod:`~audiotok.whisper.training` — the ASR-loss training recipe's library half (task, SpecAugment, loop).
"""

from audiotok.whisper.decode import WERResult, evaluate_manifest, transcribe, transcribe_audio, transcribe_files
from audiotok.whisper.loss import (
    CTC_CHARS,
    asr_loss,
    char_training_vocab,
    character_ctc_loss,
    decoder_logits,
    restricted_cross_entropy,
    restricted_vocab,
    teacher_forcing_targets,
    text_cross_entropy,
    zero_rows_outside,
)
from audiotok.whisper.model import (
    SAMPLE_RATE,
    TEXT_UNITS,
    Whisper,
    WhisperFrontend,
    load_whisper,
    new_whisper,
    save_openai,
    save_safetensors,
    small_dims,
    text_unit,
    with_audio_context,
)
from audiotok.whisper.text import (
    IGNORE,
    char_vocab,
    corrupt_tokens,
    encode_text,
    error_rates,
    get_tokenizer,
    normalize,
    text_targets,
    tokenizer_for,
    word_error_rate,
)

__all__ = [
    "CTC_CHARS",
    "IGNORE",
    "SAMPLE_RATE",
    "TEXT_UNITS",
    "WERResult",
    "Whisper",
    "WhisperFrontend",
    "asr_loss",
    "char_training_vocab",
    "char_vocab",
    "character_ctc_loss",
    "corrupt_tokens",
    "decoder_logits",
    "encode_text",
    "error_rates",
    "evaluate_manifest",
    "get_tokenizer",
    "load_whisper",
    "new_whisper",
    "normalize",
    "restricted_cross_entropy",
    "restricted_vocab",
    "save_openai",
    "save_safetensors",
    "small_dims",
    "teacher_forcing_targets",
    "text_cross_entropy",
    "text_targets",
    "text_unit",
    "tokenizer_for",
    "transcribe",
    "transcribe_audio",
    "transcribe_files",
    "with_audio_context",
    "word_error_rate",
    "zero_rows_outside",
]
