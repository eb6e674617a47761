"""The dashboard's views: each module gives its part of the page (`layout`) and the
callbacks that fill it (`register`)."""
