"""The stages between the queues, and the runner that drives them."""
