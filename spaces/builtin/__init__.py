"""Built-in spaces; importing this package registers them."""

from spaces.builtin import darts, hhnas, mobilenet, nb201, resnet, spaceevo  # noqa: F401
from spaces.builtin.nb201 import nb201_arch_from_str, nb201_arch_str

__all__ = ["nb201_arch_from_str", "nb201_arch_str"]
