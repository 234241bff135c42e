"""Jobs from pop to submit: the record and its state machine, the registry, inputs, submitter, statistics."""
