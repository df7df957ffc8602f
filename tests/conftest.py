import torch

# The tests use tiny batches, where thread start-up costs more than it gains on a 2-core machine.
torch.set_num_threads(1)
