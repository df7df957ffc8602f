"""Images as a Plume data type (plume.images.modality): the image sets and files and their codec (sets, files,
captions, shapes, moving_shapes, frames), grids and trajectory strips (grid), the tasks' data and backbones (masks,
super_resolution, image_conditioned, stages), latent diffusion (latent), cascades (cascade), image tasks (tasks),
and image evaluation (evaluation, evaluate)."""
from ..backbones import register_backbone
from ..modality import register_modality
from .captions import CaptionedImages, load_captioned_folder
from .grid import image_grid, save_image_grid, save_trajectory_strip, trajectory_strip
from .image_conditioned import ImageConditioned
from .modality import IMAGE_RECIPE, IMAGES, Images
from .sets import (IMAGE_SETS, ImageData, ImageSet, image_data_from_info, images_to_tensor, load_image_data,
                   load_images, tensor_to_images)
from .shapes import VOCABULARY, Scene, Shape, caption, parse_caption, render, shapes_dataset
from .super_resolution import SuperResolution

register_backbone("super_resolution", SuperResolution)  # wraps unet or dit (cascades; plume.images.cascade)
register_backbone("image_conditioned", ImageConditioned)  # wraps unet or dit (inpainting, frame interpolation)
register_modality(IMAGES)

__all__ = ["IMAGE_SETS", "ImageData", "ImageSet", "image_data_from_info", "images_to_tensor", "load_image_data",
           "load_images", "tensor_to_images", "image_grid", "save_image_grid", "trajectory_strip",
           "save_trajectory_strip", "CaptionedImages", "load_captioned_folder", "VOCABULARY", "Scene", "Shape",
           "caption", "parse_caption", "render", "shapes_dataset", "IMAGES", "IMAGE_RECIPE", "Images",
           "ImageConditioned", "SuperResolution"]
