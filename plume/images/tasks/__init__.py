"""Image tasks built on a trained denoiser, each wrapping the denoiser or hooking a sampler (DESIGN.md), never
forking one: inpainting, image-to-image (SDEdit), denoising and its noise-level estimate, super-resolution of an image
by tiles, frame interpolation, and the pictures of anomaly scores. What they share with every data type (starting the
reverse process part-way, anomaly scores) is in plume.tasks."""
