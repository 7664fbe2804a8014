"""Quantization: int8 post-training and LSQ QAT, asymmetric ternary QAT, export to the integer model."""
from edgespike.quant.export import export
from edgespike.quant.qsnn import MODES, QuantDense, QuantSNN, WeightQuantizer
from edgespike.quant.calibrate import calibration_loss, quantize

__all__ = ["MODES", "QuantDense", "QuantSNN", "WeightQuantizer", "calibration_loss", "export", "quantize"]
