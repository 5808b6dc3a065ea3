"""Page script run by st.navigation in ui/app.py; the page itself is ui.views.sign_in."""

from ui.views import sign_in

sign_in.render()
