from django import forms


class UploadForm(forms.Form):
    file = forms.FileField(help_text="a GeoTIFF, GeoPackage, GeoJSON, zipped shapefile, CSV, text or JSON file")
    name = forms.CharField(required=False, help_text="store it under another name (keep the extension)")
    replace = forms.BooleanField(required=False, help_text="replace a file you have of the same name")
