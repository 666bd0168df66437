"""Image scorers shared by thinking (critics), curation (filters) and serving (safety): CLIP
image-text similarity and nudenet's NSFW detector. They import nothing else of huajia's."""
