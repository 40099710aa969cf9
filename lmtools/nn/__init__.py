"""The feedforward neural LM (Bengio et al. 2003): model (``model``), training (``train``), CLI options."""
