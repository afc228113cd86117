"""Diffusion: an EDM-preconditioned U-Net, every ODE sampler over one denoiser interface
(Euler/DDIM, Heun, DPM-Solver++ 2M/3M, iPNDM, AMED-Solver, AMED-Plugin), and their metrics.

May import: the standard library, numpy, torch, and the rest of `ml`; never `app` or
`workers`.
"""
