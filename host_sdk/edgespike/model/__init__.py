"""The quantized model: plain data, validation, and the blob (protobuf) form."""
from edgespike.model.blob import from_bytes, load, save, to_bytes
from edgespike.model.quantized import EncoderSpec, Layer, Model, Neurons, Weights

__all__ = ["EncoderSpec", "Layer", "Model", "Neurons", "Weights", "from_bytes", "load", "save", "to_bytes"]
