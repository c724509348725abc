//! Migration sources (the layouts of real tools) and the runners that apply them.
