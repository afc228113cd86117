"""FSQ image tokens: finite scalar quantization (and a VQ-VAE baseline behind the same
interface) in a convolutional autoencoder for 64×64 figure thumbnails.

May import: the standard library, numpy, torch, and the rest of `ml`; never `app` or
`workers`.
"""
