"""Hot operators of the lab: each has a readable reference and fast paths behind one dispatch function."""
