"""FER toolkit dashboard: ``streamlit run dashboard/app.py``.

One file per page in app_pages/; shared loaders and widgets in common.py. Only the selected page runs.
The folder is deliberately not called ``pages/``: Streamlit treats a ``pages/`` folder beside the main
script as an old-style multipage app until some session has called st.navigation, so on a freshly
started server a deep link such as /webcam would run the page file alone (no page config, a
different sidebar) instead of going through this navigation.
"""

# pylibsrtp (aiortc's SRTP binding, used by the Webcam page) segfaults when it is first imported after
# TensorFlow (Train, Evaluate, Grad-CAM and MTCNN import it). Loading it first, here, keeps the order safe
# for the whole server process; it costs a few milliseconds.
import pylibsrtp  # noqa: F401  (import order matters, see above)
import streamlit as st

st.set_page_config(page_title="FER toolkit", page_icon=":material/mood:", layout="wide")


@st.cache_resource(show_spinner=False)
def _sweep_stale_uploads() -> int:
    """Once per server start: remove upload folders a crashed server left behind."""
    from fercore.data.uploads import sweep_stale_uploads

    return sweep_stale_uploads()


_sweep_stale_uploads()

# The default page is served at / but reserves its own pathname, which no URL then reaches; it reserves
# "start" so that "home" is free for the hidden alias below.
HOME = st.Page("app_pages/home.py", title="Home", icon=":material/home:", url_path="start", default=True)


def _home_alias() -> None:
    """/home: sends its visitors to the home page at /."""
    st.switch_page(HOME)


PAGES = [
    HOME,
    st.Page("app_pages/dataset.py", title="Dataset", icon=":material/dataset:", url_path="dataset"),
    st.Page("app_pages/train.py", title="Train", icon=":material/model_training:", url_path="train"),
    st.Page("app_pages/evaluate.py", title="Evaluate", icon=":material/analytics:", url_path="evaluate"),
    st.Page("app_pages/photo.py", title="Photo", icon=":material/photo_camera:", url_path="photo"),
    st.Page("app_pages/video.py", title="Video", icon=":material/movie:", url_path="video"),
    st.Page("app_pages/webcam.py", title="Webcam", icon=":material/videocam:", url_path="webcam"),
    st.Page(_home_alias, title="Home", url_path="home", visibility="hidden"),
]

st.navigation(PAGES).run()
