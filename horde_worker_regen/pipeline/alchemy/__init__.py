"""The alchemist: alchemy forms popped, fetched, run on the pipeline's children, uploaded and submitted.

`Alchemist` (alchemist.py) is what the worker starts; `AlchemyPopper` (popper.py) asks the horde for
forms, `FormRunner` (runner.py) takes each one from its source image to its child's answer,
`FormReporter` (reporter.py) uploads and submits it, `AlchemyGuard` (guard.py) keeps the fault
breaker's count, `FormBook` (book.py) holds the forms in flight. The decisions are pure functions in
`scheduling/alchemy.py`.
"""
