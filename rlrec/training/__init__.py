"""Training stages' shared parts: configs, model preparation (SID vocabulary, SA-Init, LoRA) and saving."""
