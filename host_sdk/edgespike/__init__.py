"""EdgeSpike: spiking neural networks from training to microcontrollers and neuromorphic chips.

Sub-packages, one job each: ``model`` (the quantized model and its blob), ``sim`` (numpy
reference and the C core), ``device`` (link, client, emulator), ``protocol`` (schema and
framing), ``nn`` / ``encode`` / ``data`` / ``train`` / ``quant`` (the model side), ``profile``.
"""
__version__ = "0.1.0"
