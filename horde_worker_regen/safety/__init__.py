"""Safety backends (NSFW/CSAM checks), the censoring policy and the censor images."""
