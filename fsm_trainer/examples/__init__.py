"""Runnable examples (``python -m fsm_trainer.examples.digits``)."""
