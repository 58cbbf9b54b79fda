"""The demo soundscape and the program that mixes it (`python -m demo.make_demo`)."""
