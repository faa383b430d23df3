"""TouchTTS-style data pipeline: segment raw recordings, transcribe twice, keep what agrees, tokenize, report."""
