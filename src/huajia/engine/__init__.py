"""Generation: load any diffusers text-to-image pipeline (or the embedded model) and generate
with A1111 prompt weights, styles, schedulers, LoRAs and PNG infotext."""
