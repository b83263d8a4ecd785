"""Layout blocks of the Home page: the shipped model's card in sections."""

from __future__ import annotations

import re
from pathlib import Path

import streamlit as st

from fercore.paths import MODELS_DIR

_IMAGE = re.compile(r"^!\[(?P<alt>[^\]]*)\]\((?P<src>[^)\s]+)\)\s*$", re.MULTILINE)


def markdown_with_images(text: str, folder: Path = MODELS_DIR) -> None:
    """Markdown whose local images (``![alt](file)`` on a line of their own, relative to ``folder``)
    are drawn with st.image: st.markdown cannot load files beside the card."""
    pos = 0
    for m in _IMAGE.finditer(text):
        st.markdown(text[pos : m.start()])
        image = folder / m["src"]
        if image.is_file() and image.resolve().is_relative_to(folder.resolve()):
            st.image(str(image), caption=m["alt"] or None, width=560)
        pos = m.end()
    st.markdown(text[pos:])


def model_card(sections: list[tuple[str, str]]) -> None:
    """The card's introduction (its facts table) in full, then one expander per section."""
    if not sections:
        return
    title, intro = sections[0]
    st.subheader(title or "Model card")
    markdown_with_images(intro)
    for name, body in sections[1:]:
        with st.expander(name):
            markdown_with_images(body)
