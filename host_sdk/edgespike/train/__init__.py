"""Training: BPTT with surrogate gradients, and ANN-to-SNN conversion."""
from edgespike.train.convert import convert_ann
from edgespike.train.trainer import History, TrainConfig, Trainer, evaluate, load_checkpoint, set_seed

__all__ = ["History", "TrainConfig", "Trainer", "convert_ann", "evaluate", "load_checkpoint", "set_seed"]
