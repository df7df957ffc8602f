"""Data: toy sets, Gaussian mixtures with exact denoisers, image sets, captioned shapes scenes, users' captioned
folders, and the codecs of each modality."""
from .captions import CaptionedImages, load_captioned_folder
from .gaussian_mixture import GaussianMixture, random_mixture, ring_mixture
from .image_grid import image_grid, save_image_grid, save_trajectory_strip, trajectory_strip
from .images import (IMAGE_SETS, ImageData, ImageSet, image_data_from_info, images_to_tensor, load_image_data,
                     load_images, tensor_to_images)
from .shapes import VOCABULARY, Scene, Shape, caption, parse_caption, render, shapes_dataset
from .toy import TOY_SETS, toy_data, toy_mixture

__all__ = ["GaussianMixture", "random_mixture", "ring_mixture", "TOY_SETS", "toy_data", "toy_mixture",
           "IMAGE_SETS", "ImageData", "ImageSet", "image_data_from_info", "images_to_tensor", "load_image_data",
           "load_images", "tensor_to_images", "image_grid", "save_image_grid", "trajectory_strip",
           "save_trajectory_strip", "CaptionedImages", "load_captioned_folder", "VOCABULARY", "Scene", "Shape",
           "caption", "parse_caption", "render", "shapes_dataset"]
