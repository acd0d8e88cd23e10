//! The vision-language model on libtorch (`tch`).
