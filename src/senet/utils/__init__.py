"""Small helpers shared by the training, interop and analysis code."""
