"""Thinking while painting (after TwiG): plan regions, steer denoising by region, pause and
look with a critic, steer again, reflect and repaint, stop when satisfied."""
