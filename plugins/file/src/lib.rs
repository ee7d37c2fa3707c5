//! Bento driver storing entries as files in a directory (not yet implemented).
