# placeholder views, replaced by the accounts UI work
from django.http import HttpResponse


def home(request):
    return HttpResponse("home")


login_view = logout_view = mfa_verify = mfa_setup = home
