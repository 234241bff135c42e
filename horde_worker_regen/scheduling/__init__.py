"""Pure scheduling policies: how much to pop, which queued job goes to which slot."""
