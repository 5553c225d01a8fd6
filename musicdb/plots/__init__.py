"""Pages drawn with plotly (the only plotly imports)."""
